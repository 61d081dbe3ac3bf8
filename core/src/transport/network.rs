//! The Cap'n Proto two-party network over any byte stream a transport gives.

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::twoparty::VatNetwork;
use futures::io::BufReader;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// A Cap'n Proto two-party network over a byte stream.
pub fn vat_network<S>(stream: S, side: Side) -> VatNetwork<BufReader<tokio_util::compat::Compat<tokio::io::ReadHalf<S>>>>
where
    S: AsyncRead + AsyncWrite + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut options = capnp::message::ReaderOptions::new();
    options.traversal_limit_in_words(Some(1 << 30));
    // Buffered: capnp writes a message's segment table and segments separately
    // and flushes after each message, so a message is one write, not two.
    let writer = futures::io::BufWriter::new(writer.compat_write());
    VatNetwork::new(BufReader::new(reader.compat()), writer, side, options)
}

