//! The host memory a probe holds through `wasi:http`, charged to one account per run and
//! checked against `--max-memory` before the host keeps it.
//!
//! wasmtime-wasi-http caps each header map (64 KiB) but not their number, nor the request
//! bodies buffered before they are sent, nor the strings set on requests: a probe that keeps
//! ten thousand header maps held gigabytes of host memory that the guest's own memory cap
//! does not see. The functions of `wasi:http` that make the host keep guest data are
//! defined again here, over wasmtime-wasi-http's own: each charges what it keeps to the
//! run's [`HostMemory`] first, and refuses with the error the interface has for it
//! (`header-error.forbidden`, or the `result`'s error) when the account is full; the
//! verdict then names the cap. Nothing is credited back when a resource is dropped (no hook
//! sees drops): when a charge does not fit, the account is counted again from what the
//! resource table holds now.
//!
//! The same functions give the guest the error for a header map over wasmtime-wasi-http's
//! own 64 KiB, which it would otherwise turn into a trap, and `handle` waits for the
//! requests the probe dropped to be gone before it sends more, so that a probe sending and
//! dropping requests in a loop cannot pile up tasks the runtime has not yet reclaimed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as Handler;
use wasmtime_wasi_http::p2::bindings::http::types::{
    ErrorCode, HeaderError, HostFields, HostOutgoingRequest as HostRequest, Method, Scheme,
};
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{FieldMap, FieldMapError, RequestOptions, WasiHttpCtxView, WasiHttpView};

use super::WasiHttpParts;
use crate::limits::{Exceeded, LimitExceeded};

/// The versions of the interfaces as wasmtime-wasi-http defines them; a guest importing an
/// earlier 0.2 version is linked to these.
const TYPES: &str = "wasi:http/types@0.2.12";
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// What a header map's entry costs besides its name and value: the map's bucket and the
/// value's own header.
const ENTRY_BYTES: u64 = 64;
/// What a request body may hold in host memory before it is sent: the chunk being written
/// and the one buffered ahead of it.
pub const BODY_BYTES: u64 = 2 * super::REQUEST_CHUNK_BYTES as u64;
/// How often the account may be counted again from the resource table: a guest refused
/// again and again must not make every refusal cost a walk of the table.
const RECOUNT_EVERY: Duration = Duration::from_millis(1);

/// The run's account of host memory held for the guest through `wasi:http`.
#[derive(Debug)]
pub struct HostMemory {
    limit: u64,
    /// Bytes charged since the account was last counted from the table; never less than
    /// what is held.
    charged: u64,
    counted: Option<Instant>,
    exceeded: Exceeded,
}

impl HostMemory {
    /// An empty account capped at `limit` bytes (`--max-memory`), recording a refusal in
    /// `exceeded` for the verdict.
    pub fn new(limit: u64, exceeded: Exceeded) -> Self {
        Self {
            limit,
            charged: 0,
            counted: None,
            exceeded,
        }
    }

    /// Charges `bytes` the host is about to keep; false (and the cap recorded) if they do
    /// not fit even after counting what `table` holds now.
    fn charge(&mut self, table: &mut ResourceTable, bytes: u64) -> bool {
        if self.charged.saturating_add(bytes) <= self.limit {
            self.charged += bytes;
            return true;
        }
        if self.counted.is_none_or(|at| at.elapsed() >= RECOUNT_EVERY) {
            self.charged = held(table);
            self.counted = Some(Instant::now());
            if self.charged.saturating_add(bytes) <= self.limit {
                self.charged += bytes;
                return true;
            }
        }
        self.exceeded
            .record(LimitExceeded::HostMemory { limit: self.limit });
        false
    }
}

/// Bytes of guest data that `table` holds through `wasi:http` now.
fn held(table: &mut ResourceTable) -> u64 {
    table
        .iter_mut()
        .map(|entry| {
            if let Some(fields) = entry.downcast_ref::<FieldMap>() {
                fields_bytes(fields)
            } else if let Some(request) = entry.downcast_ref::<HostOutgoingRequest>() {
                let strings = [&request.authority, &request.path_with_query]
                    .into_iter()
                    .flatten()
                    .map(|s| s.len() as u64)
                    .sum::<u64>();
                fields_bytes(&request.headers) + strings
            } else if entry.is::<HostOutgoingBody>() {
                BODY_BYTES
            } else {
                0
            }
        })
        .sum()
}

fn fields_bytes(fields: &FieldMap) -> u64 {
    fields
        .iter()
        .map(|(name, value)| entry_bytes(name.as_str().len(), value.len()))
        .sum()
}

fn entry_bytes(name: usize, value: usize) -> u64 {
    (name + value) as u64 + ENTRY_BYTES
}

/// Requests a run may have sent whose tasks are not over (waiting for a connection, a
/// response, or, dropped by the guest, to be reclaimed by the runtime), counted by the
/// requests' own futures.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Counter>);

#[derive(Debug, Default)]
struct Counter {
    count: AtomicUsize,
    /// Woken each time a request is over.
    over: tokio::sync::Notify,
}

impl InFlight {
    /// Counts one request until the returned guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    /// Waits until fewer than `max` requests are in flight: without a busy loop, while
    /// requests held by a hung server wait for their deadline.
    async fn below(&self, max: usize) {
        loop {
            let over = self.0.over.notified();
            if self.0.count.load(Ordering::SeqCst) < max {
                return;
            }
            over.await;
        }
    }
}

/// One request counted by [`InFlight`].
#[derive(Debug)]
pub struct InFlightGuard(Arc<Counter>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.over.notify_waiters();
    }
}

/// The requests a run may have in flight: as many as the connections it may hold, since each
/// holds a place under the socket cap until its task is over (a dropped request's too, until
/// the runtime reclaims it).
pub fn max_in_flight(max_sockets: usize) -> usize {
    max_sockets.max(1)
}

/// A header operation's result for the guest: the interface's error for a map over its own
/// size (which wasmtime-wasi-http would make a trap), a trap for anything else.
fn header_result<T>(
    result: Result<T, wasmtime_wasi_http::p2::HeaderError>,
) -> wasmtime::Result<Result<T, HeaderError>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) => match e.downcast() {
            Ok(typed) => Ok(Err(typed)),
            Err(trap) => match trap.downcast_ref::<FieldMapError>() {
                Some(FieldMapError::TotalSizeTooBig | FieldMapError::TooManyFields) => {
                    Ok(Err(HeaderError::Forbidden))
                }
                _ => Err(trap),
            },
        },
    }
}

/// Charges `bytes` to the run's account.
fn charge<T>(
    store: &mut StoreContextMut<'_, T>,
    get: fn(&mut T) -> WasiHttpParts<'_>,
    bytes: u64,
) -> bool {
    let parts = get(store.data_mut());
    parts.state.memory.charge(parts.table, bytes)
}

/// What a header operation refused for the account gets: `header-error` has no case for
/// size, and `forbidden` is the one a guest takes as "this header may not be set".
fn forbidden<T>() -> Result<T, HeaderError> {
    Err(HeaderError::Forbidden)
}

/// Charges `bytes`, then lets `call` keep them through wasmtime-wasi-http; `refused` is the
/// guest's answer when they do not fit.
fn charged<T: WasiHttpView, R>(
    store: &mut StoreContextMut<'_, T>,
    get: fn(&mut T) -> WasiHttpParts<'_>,
    bytes: u64,
    refused: R,
    call: impl FnOnce(&mut WasiHttpCtxView<'_>) -> wasmtime::Result<R>,
) -> wasmtime::Result<(R,)> {
    if !charge(store, get, bytes) {
        return Ok((refused,));
    }
    Ok((call(&mut store.data_mut().http())?,))
}

fn text_bytes(text: Option<&str>) -> u64 {
    text.map_or(0, |t| t.len() as u64)
}

type Request = Resource<HostOutgoingRequest>;

/// Defines the functions of `wasi:http` described in the module documentation over the
/// ones wasmtime-wasi-http registered in `linker`.
pub fn add_to_linker<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> WasiHttpParts<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = define(linker, get);
    linker.allow_shadowing(false);
    defined
}

fn define<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> WasiHttpParts<'_>,
) -> wasmtime::Result<()> {
    let mut types = linker.instance(TYPES)?;
    types.func_wrap(
        "[method]fields.append",
        move |mut store, (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            let bytes = entry_bytes(name.len(), value.len());
            charged(&mut store, get, bytes, forbidden(), |view| {
                header_result(HostFields::append(view, fields, name, value))
            })
        },
    )?;
    types.func_wrap(
        "[method]fields.set",
        move |mut store, (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let bytes = values
                .iter()
                .map(|v| entry_bytes(name.len(), v.len()))
                .sum();
            charged(&mut store, get, bytes, forbidden(), |view| {
                header_result(HostFields::set(view, fields, name, values))
            })
        },
    )?;
    types.func_wrap(
        "[static]fields.from-list",
        move |mut store, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let bytes = entries
                .iter()
                .map(|(n, v)| entry_bytes(n.len(), v.len()))
                .sum();
            charged(&mut store, get, bytes, forbidden(), |view| {
                header_result(HostFields::from_list(view, entries))
            })
        },
    )?;
    types.func_wrap(
        "[method]fields.clone",
        move |mut store, (fields,): (Resource<FieldMap>,)| {
            let bytes = fields_bytes(get(store.data_mut()).table.get(&fields)?);
            if !charge(&mut store, get, bytes) {
                // The interface has no error here: the cap, named in the verdict, ends the run.
                let limit = get(store.data_mut()).state.memory.limit;
                return Err(LimitExceeded::HostMemory { limit }.into());
            }
            let mut view = store.data_mut().http();
            Ok((HostFields::clone(&mut view, fields)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.body",
        move |mut store, (request,): (Request,)| {
            charged(&mut store, get, BODY_BYTES, Err(()), |view| {
                HostRequest::body(view, request)
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        move |mut store, (request, path): (Request, Option<String>)| {
            charged(
                &mut store,
                get,
                text_bytes(path.as_deref()),
                Err(()),
                |view| HostRequest::set_path_with_query(view, request, path),
            )
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-authority",
        move |mut store, (request, authority): (Request, Option<String>)| {
            charged(
                &mut store,
                get,
                text_bytes(authority.as_deref()),
                Err(()),
                |view| HostRequest::set_authority(view, request, authority),
            )
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-method",
        move |mut store, (request, method): (Request, Method)| {
            let other = match &method {
                Method::Other(m) => Some(m.as_str()),
                _ => None,
            };
            charged(&mut store, get, text_bytes(other), Err(()), |view| {
                HostRequest::set_method(view, request, method)
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-scheme",
        move |mut store, (request, scheme): (Request, Option<Scheme>)| {
            let other = match &scheme {
                Some(Scheme::Other(s)) => Some(s.as_str()),
                _ => None,
            };
            charged(&mut store, get, text_bytes(other), Err(()), |view| {
                HostRequest::set_scheme(view, request, scheme)
            })
        },
    )?;

    let mut handler = linker.instance(OUTGOING_HANDLER)?;
    handler.func_wrap_async(
        "handle",
        move |mut store: StoreContextMut<'_, T>,
              (request, options): (Request, Option<Resource<RequestOptions>>)| {
            Box::new(async move {
                // The tasks of dropped requests are reclaimed when the runtime gets to them,
                // which a probe that never waits would not let it do: wait for it here.
                let (in_flight, max) = {
                    let hooks = &get(store.data_mut()).state.hooks;
                    (hooks.in_flight.clone(), hooks.max_in_flight)
                };
                in_flight.below(max).await;
                // The options are the host's now, and wasmtime-wasi-http only reads them:
                // left in the table, each request would hold a handle to the end of the run.
                let options_rep = options.as_ref().map(Resource::rep);
                let mut view = store.data_mut().http();
                let sent: Result<Resource<HostFutureIncomingResponse>, ErrorCode> =
                    match Handler::handle(&mut view, request, options) {
                        Ok(future) => Ok(future),
                        Err(e) => Err(e.downcast()?),
                    };
                if let Some(rep) = options_rep {
                    let _ = get(store.data_mut())
                        .table
                        .delete(Resource::<RequestOptions>::new_own(rep));
                }
                Ok((sent,))
            })
        },
    )?;
    Ok(())
}
