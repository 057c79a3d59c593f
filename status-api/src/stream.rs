//! Streamed bodies under warp. warp 0.4 offers handlers no public streaming body, so the
//! logs handler answers with an empty body and a [`LogStream`] extension, and [`Streaming`],
//! the service the server runs, puts the stream in as the body. The channel behind it is
//! bounded: a client that stops reading stops the producer, never grows a buffer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The body type the server sends.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body to stream in place of the response's own (empty) one.
#[derive(Clone)]
pub struct LogStream(Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>);

impl LogStream {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> LogStream {
        LogStream(Arc::new(Mutex::new(Some(rx))))
    }

    fn take(&self) -> Option<mpsc::Receiver<Bytes>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Wraps the warp service: swaps in streamed bodies, boxes the others.
#[derive(Clone)]
pub struct Streaming<S>(pub S);

impl<S> hyper::service::Service<Request<Incoming>> for Streaming<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = warp::reply::Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let (mut parts, body) = resp.into_parts();
            let body = match parts.extensions.remove::<LogStream>().and_then(|s| s.take()) {
                Some(rx) => BodyExt::boxed_unsync(StreamBody::new(
                    ReceiverStream::new(rx)
                        .map(|b| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b))),
                )),
                None => body
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                    .boxed_unsync(),
            };
            Ok(Response::from_parts(parts, body))
        })
    }
}
