//! The `titan-pm` binary: [`titan_pm_cli::run`] with the process's arguments;
//! it relaunches itself (`start`'s daemon) as its own executable.

fn main() {
    let me = std::env::current_exe().map(Into::into).unwrap_or_else(|_| std::ffi::OsString::from("titan-pm"));
    std::process::exit(titan_pm_cli::run(std::env::args_os(), &titan_pm_cli::Launcher::new(vec![me])));
}
