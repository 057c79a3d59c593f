//! A container's log as the engine streams it, split back into the bytes the program wrote.
//! Without a TTY the engine multiplexes stdout and stderr into frames (an 8-byte header:
//! stream type, three zero bytes, the payload's length as a big-endian u32); with one it
//! sends the raw bytes. Engines before API 1.42 label both `raw-stream`, so the container's
//! `Config.Tty` decides, as the Docker CLI does.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use hyper::body::{Body as _, Incoming};

use super::EngineError;

/// Largest frame accepted; a longer one means the stream is not what it should be.
const MAX_FRAME: usize = 16 << 20;

/// The log's bytes, chunk by chunk (frames' payloads, or the raw stream).
pub struct LogBytes {
    body: Incoming,
    /// Multiplexed frames (no TTY) or raw bytes.
    framed: bool,
    buf: BytesMut,
    done: bool,
}

impl LogBytes {
    pub fn new(body: Incoming, tty: bool) -> LogBytes {
        LogBytes {
            body,
            framed: !tty,
            buf: BytesMut::new(),
            done: false,
        }
    }
}

/// The next whole frame's payload in `buf`, if one is there; an error for a header that is
/// not one.
fn next_frame(buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    if buf[0] > 2 || buf[1..4] != [0, 0, 0] {
        return Err(format!("not a log frame header: {:02x?}", &buf[..8]));
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("a log frame of {len} bytes"));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    buf.advance(8);
    Ok(Some(buf.split_to(len).freeze()))
}

impl Stream for LogBytes {
    type Item = Result<Bytes, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let broken = |message: String| EngineError::Transport {
            what: "read the logs".into(),
            message,
        };
        loop {
            if self.framed {
                match next_frame(&mut self.buf) {
                    Ok(Some(payload)) if payload.is_empty() => continue,
                    Ok(Some(payload)) => return Poll::Ready(Some(Ok(payload))),
                    Ok(None) => {}
                    Err(e) => {
                        self.done = true;
                        self.buf.clear();
                        return Poll::Ready(Some(Err(broken(e))));
                    }
                }
            } else if !self.buf.is_empty() {
                let chunk = self.buf.split().freeze();
                return Poll::Ready(Some(Ok(chunk)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    if self.framed && !self.buf.is_empty() {
                        self.buf.clear();
                        return Poll::Ready(Some(Err(broken("the log ended inside a frame".into()))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(broken(e.to_string()))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_whatever_the_chunks() {
        let mut wire = Vec::new();
        for (stream, text) in [(1u8, "out\n"), (2, "err\n"), (1, "")] {
            wire.extend_from_slice(&[stream, 0, 0, 0]);
            wire.extend_from_slice(&(text.len() as u32).to_be_bytes());
            wire.extend_from_slice(text.as_bytes());
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(p) = next_frame(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, [&b"out\n"[..], b"err\n", b""]);
        let mut bad = BytesMut::from(&b"hello world"[..]);
        assert!(next_frame(&mut bad).is_err(), "raw bytes are not frames");
    }
}
