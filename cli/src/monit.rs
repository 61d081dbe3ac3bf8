//! `titan-pm monit`: a live terminal view (ratatui over crossterm). Each
//! process gets a panel: cpu %, memory, requests/s (from the change in its
//! request count), errors, p50/p99 latency, and cpu and memory sparklines over
//! the last [`HISTORY`] samples. `q` or Esc quits; the terminal is restored.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use serde_json::Value as J;
use titan_pm::titan_capnp::manager;

use crate::commands::{bytes, duration_ms, list, num, text};

/// Samples kept per process for the sparklines.
const HISTORY: usize = 120;

#[derive(Default)]
struct Track {
    cpu: VecDeque<u64>,
    memory: VecDeque<u64>,
    last: Option<(f64, Instant)>,
    rate: f64,
}

fn push(q: &mut VecDeque<u64>, x: u64) {
    if q.len() >= HISTORY {
        q.pop_front();
    }
    q.push_back(x);
}

pub async fn run(m: &manager::Client, interval: Duration) -> Result<(), String> {
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot start the terminal view: {e}"))?;
    let result = watch(m, interval, &mut terminal).await;
    ratatui::restore();
    result
}

async fn watch(m: &manager::Client, interval: Duration, terminal: &mut ratatui::DefaultTerminal) -> Result<(), String> {
    let mut tracks: BTreeMap<u64, Track> = BTreeMap::new();
    let mut scroll = 0usize;
    loop {
        let rows = list(m).await?.as_array().cloned().unwrap_or_default();
        let now = Instant::now();
        tracks.retain(|id, _| rows.iter().any(|r| r["processId"].as_u64() == Some(*id)));
        for r in &rows {
            let t = tracks.entry(r["processId"].as_u64().unwrap_or(0)).or_default();
            push(&mut t.cpu, (num(r, &["metrics", "cpu"]) * 10.0) as u64);
            push(&mut t.memory, num(r, &["metrics", "memory"]) as u64);
            let requests = num(r, &["metrics", "requests"]);
            if let Some((before, at)) = t.last {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    t.rate = ((requests - before) / secs).max(0.0);
                }
            }
            t.last = Some((requests, now));
        }
        terminal.draw(|f| draw(f, &rows, &tracks, scroll)).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left).map_err(|e| e.to_string())? {
                break;
            }
            if let Event::Key(k) = event::read().map_err(|e| e.to_string())? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Down | KeyCode::Char('j') => scroll = (scroll + 1).min(rows.len().saturating_sub(1)),
                    KeyCode::Up | KeyCode::Char('k') => scroll = scroll.saturating_sub(1),
                    _ => {}
                }
            }
        }
    }
}

fn draw(f: &mut ratatui::Frame, rows: &[J], tracks: &BTreeMap<u64, Track>, scroll: usize) {
    let area = f.area();
    let [header, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    f.render_widget(
        Paragraph::new(format!("titan-pm monit — {} processes — ↑/↓ scroll, q quits", rows.len())).style(Style::default().fg(Color::Cyan)),
        header,
    );
    if rows.is_empty() {
        f.render_widget(Paragraph::new("no processes"), body);
        return;
    }
    const PANEL: u16 = 4;
    let fit = (body.height / PANEL).max(1) as usize;
    let shown: Vec<&J> = rows.iter().skip(scroll.min(rows.len().saturating_sub(1))).take(fit).collect();
    let areas = Layout::vertical(shown.iter().map(|_| Constraint::Length(PANEL))).split(body);
    for (r, a) in shown.iter().zip(areas.iter()) {
        let id = r["processId"].as_u64().unwrap_or(0);
        let t = tracks.get(&id);
        let title = format!(" {id} {} · pid {} · {} · up {} ", text(r, "name"), text(r, "pid"), text(r, "state"), duration_ms(num(r, &["uptime"])));
        let block = Block::default().borders(Borders::ALL).title(title);
        let inner = block.inner(*a);
        f.render_widget(block, *a);
        let [stats, sparks] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
        let line = format!(
            "cpu {:>5.1}%  mem {:>9}  req/s {:>7.1}  errors {}  p50 {:.2} ms  p99 {:.2} ms  in flight {}",
            num(r, &["metrics", "cpu"]),
            bytes(num(r, &["metrics", "memory"])),
            t.map_or(0.0, |t| t.rate),
            num(r, &["metrics", "errors"]) as u64,
            num(r, &["metrics", "latency", "p50"]),
            num(r, &["metrics", "latency", "p99"]),
            num(r, &["metrics", "inFlight"]) as u64,
        );
        f.render_widget(Paragraph::new(Line::from(line)), stats);
        let [cpu_label, cpu, mem_label, mem] =
            Layout::horizontal([Constraint::Length(4), Constraint::Percentage(45), Constraint::Length(5), Constraint::Percentage(45)]).areas(sparks);
        let data = |q: Option<&VecDeque<u64>>, width: u16| -> Vec<u64> {
            let q: Vec<u64> = q.map(|q| q.iter().copied().collect()).unwrap_or_default();
            let skip = q.len().saturating_sub(width as usize);
            q[skip..].to_vec()
        };
        f.render_widget(Paragraph::new("cpu"), cpu_label);
        f.render_widget(Sparkline::default().data(data(t.map(|t| &t.cpu), cpu.width)).max(1000).style(Style::default().fg(Color::Green)), cpu);
        f.render_widget(Paragraph::new(" mem"), mem_label);
        f.render_widget(Sparkline::default().data(data(t.map(|t| &t.memory), mem.width)).style(Style::default().fg(Color::Yellow)), mem);
    }
}
