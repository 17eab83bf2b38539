//! `wasi:sockets/tcp-create-socket` and `udp-create-socket` with a cap on the sockets a run
//! holds at once (`--max-sockets`), and `tcp-socket.start-connect` naming the destinations
//! WASI refuses before the network policy is asked.
//!
//! Without the cap, a probe could open sockets up to the process's file descriptor limit:
//! the host would then fail in ways the probe is not blamed for (no descriptor left for the
//! compile cache or the resolver), and closing thousands of connections costs time after
//! the deadline. wasmtime-wasi has no such cap, so these functions shadow WASI's, check,
//! and delegate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::StoreContextMut;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsCtxView;

use crate::activity::Activity;
use crate::imports::RunInputs;
use crate::limits::{Exceeded, LimitExceeded};
use crate::sandbox::Sandbox;

/// The sockets a run holds, against its cap.
#[derive(Debug)]
pub struct SocketCap {
    max: usize,
    /// Table indices of the sockets created so far; some may have been dropped since.
    created: Vec<Created>,
    /// The `wasi:http` client's open connections.
    conns: Conns,
    exceeded: Exceeded,
    held: Held,
    /// Where a connect and a name lookup are recorded as the probe's last host call.
    pub activity: Activity,
}

/// How many sockets a run held when it last made one (it may have dropped some since),
/// readable from outside the store: closing sockets takes time, which the runner keeps
/// back from the deadline.
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<AtomicUsize>);

impl Held {
    /// The count.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The connections the `wasi:http` client (`super::wasi_http`) holds open: they count
/// against the same cap as the WASI sockets.
#[derive(Debug, Clone, Default)]
pub struct Conns(Arc<AtomicUsize>);

impl Conns {
    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the `wasi:http` client needs of the cap, taken afresh on each of its calls (its
/// requests leave the store, so they cannot consult [`SocketCap`] itself).
#[derive(Debug, Clone)]
pub struct ConnCap {
    max: usize,
    /// The WASI sockets the probe held when the snapshot was taken.
    wasi: usize,
    conns: Conns,
    exceeded: Exceeded,
    held: Held,
}

impl ConnCap {
    /// One more connection, counted until the permit drops, or `None` (recorded for the
    /// verdict) if the probe holds as many sockets as it may.
    pub fn admit(&self) -> Option<ConnPermit> {
        let open = self.conns.0.fetch_add(1, Ordering::Relaxed);
        if self.wasi + open >= self.max {
            self.conns.0.fetch_sub(1, Ordering::Relaxed);
            self.exceeded
                .record(LimitExceeded::Sockets { limit: self.max });
            return None;
        }
        self.held.0.store(self.wasi + open + 1, Ordering::Relaxed);
        Some(ConnPermit(self.conns.clone()))
    }
}

/// One open `wasi:http` connection.
pub struct ConnPermit(Conns);

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Created {
    Tcp(u32),
    Udp(u32),
}

impl SocketCap {
    /// The run's cap on sockets; a refusal is recorded in the run's `exceeded`, the count
    /// kept in its `held`.
    pub fn new(run: &RunInputs) -> Self {
        Self {
            max: run.limits.max_sockets,
            created: Vec::new(),
            conns: Conns::default(),
            exceeded: run.exceeded.clone(),
            held: run.held.clone(),
            activity: run.activity.clone(),
        }
    }

    /// How many sockets the probe holds now: WASI sockets and `wasi:http` connections.
    pub fn live(&mut self, table: &ResourceTable) -> usize {
        let n = self.wasi_live(table) + self.conns.get();
        self.held.0.store(n, Ordering::Relaxed);
        n
    }

    /// The cap as the `wasi:http` client sees it now.
    pub fn conn_cap(&mut self, table: &ResourceTable) -> ConnCap {
        ConnCap {
            max: self.max,
            wasi: self.wasi_live(table),
            conns: self.conns.clone(),
            exceeded: self.exceeded.clone(),
            held: self.held.clone(),
        }
    }

    /// How many WASI sockets the probe holds now.
    ///
    /// A socket the guest dropped leaves the table, and its slot may since hold another
    /// kind of resource; only sockets made here can be sockets (probes may not listen, so
    /// nothing is accepted), so what is still a socket of its kind is still held. The list
    /// never grows past the cap, so this stays cheap.
    fn wasi_live(&mut self, table: &ResourceTable) -> usize {
        self.created.retain(|c| match *c {
            Created::Tcp(rep) => table.get(&Resource::<TcpSocket>::new_own(rep)).is_ok(),
            Created::Udp(rep) => table.get(&Resource::<UdpSocket>::new_own(rep)).is_ok(),
        });
        // A slot freed and reused by a new socket of the same kind appears twice.
        self.created.sort_unstable();
        self.created.dedup();
        self.created.len()
    }

    fn push(&mut self, created: Created) {
        self.created.push(created);
        self.held
            .0
            .store(self.created.len() + self.conns.get(), Ordering::Relaxed);
    }

    /// Whether one more socket is allowed; a refusal is recorded for the verdict.
    fn admit(&mut self, table: &ResourceTable) -> bool {
        if self.live(table) < self.max {
            return true;
        }
        self.exceeded
            .record(LimitExceeded::Sockets { limit: self.max });
        false
    }
}

/// The version of `wasi:sockets` wasmtime-wasi registers (guests importing any 0.2.x are
/// linked to it); `start-connect` is replaced under this name.
const WASI_TCP: &str = "wasi:sockets/tcp@0.2.12";

/// Replaces WASI's `tcp-create-socket` and `udp-create-socket` in `linker` (which must
/// already hold WASI) with the capped ones, and `tcp-socket.start-connect` with one that
/// names a refused destination.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> SocketsView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    tcp_create_socket::add_to_linker::<T, Sockets>(linker, get)?;
    udp_create_socket::add_to_linker::<T, Sockets>(linker, get)?;
    linker.instance(WASI_TCP)?.func_wrap(
        "[method]tcp-socket.start-connect",
        move |mut store: StoreContextMut<'_, T>, args| start_connect(get(store.data_mut()), args),
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// WASI refuses some destinations (`0.0.0.0`, `::`, IPv4-mapped IPv6, port 0, multicast)
/// with a bare `invalid-argument` before the network policy is asked, so the operator
/// would learn nothing; such a refusal is recorded as a denial with what to connect to
/// instead.
fn start_connect(
    mut v: SocketsView<'_>,
    (socket, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress),
) -> wasmtime::Result<(Result<(), ErrorCode>,)> {
    let addr = SocketAddr::from(remote);
    v.cap.activity.connecting(addr);
    let Err(e) = HostTcpSocket::start_connect(&mut v.sockets, socket, network, remote) else {
        return Ok((Ok(()),));
    };
    let code = network::Host::convert_error_code(&mut v.sockets, e)?;
    if code == ErrorCode::InvalidArgument && !is_destination(addr) {
        v.sandbox.net.refuse_destination(addr);
    }
    Ok((Err(code),))
}

/// Whether WASI accepts `addr` as a TCP destination at all.
fn is_destination(addr: SocketAddr) -> bool {
    let mapped = matches!(addr.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
    let ip = addr.ip().to_canonical();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(mapped || ip.is_unspecified() || ip.is_multicast() || broadcast || addr.port() == 0)
}

pub(super) struct Sockets;

impl HasData for Sockets {
    type Data<'a> = SocketsView<'a>;
}

/// WASI's sockets view plus the grants and the cap.
pub struct SocketsView<'a> {
    /// What WASI's own implementations work on; everything not checked is delegated.
    pub sockets: WasiSocketsCtxView<'a>,
    /// The grants lookups are checked against.
    pub sandbox: &'a Sandbox,
    /// The socket cap.
    pub cap: &'a mut SocketCap,
}

impl tcp_create_socket::Host for SocketsView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        if !self.cap.admit(self.sockets.table) {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        let socket = tcp_create_socket::Host::create_tcp_socket(&mut self.sockets, family)?;
        self.cap.push(Created::Tcp(socket.rep()));
        Ok(socket)
    }
}

impl udp_create_socket::Host for SocketsView<'_> {
    async fn create_udp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        if !self.cap.admit(self.sockets.table) {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        let socket = udp_create_socket::Host::create_udp_socket(&mut self.sockets, family).await?;
        self.cap.push(Created::Udp(socket.rep()));
        Ok(socket)
    }
}

// The shadowed interfaces use `network`'s types, so their bindings want the `network` host
// traits too; they only delegate (the linker keeps WASI's own `network` functions).
impl network::Host for SocketsView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<network::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets, err)
    }
}

impl network::HostNetwork for SocketsView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets, this)
    }
}
