//! `midge_bench --floor SIZE [SUBSCRIBERS] [BATCH] [SECONDS]`: what the kernel alone costs a
//! broker to send one payload of SIZE bytes to each of SUBSCRIBERS loopback TCP connections,
//! BATCH messages per vectored write (a 5-byte head and the payload, the payload never copied
//! in user space), with no broker at all. A reader thread on another CPU drains the
//! connections (discarding the bytes in the kernel, `recv` with `MSG_TRUNC`). It prints the
//! writing thread's CPU time per delivery: a floor under any broker's CPU per delivery on this
//! machine, to set beside the `fanout` scenario's `cpu_s_per_M` for midge and mosquitto.

use std::io::{self, IoSlice, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::socket::{recv, MsgFlags};
use nix::unistd::Pid;

/// Pins the calling thread to `cpu`; ignored where that CPU does not exist.
fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// utime + stime of the calling thread, in clock ticks.
fn thread_ticks() -> Option<u64> {
    crate::sys::parse_stat(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

pub fn run(args: &[String]) -> Result<String, String> {
    let num = |i: usize, default: usize| -> Result<usize, String> {
        match args.get(i) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--floor: '{v}' is not a positive number")),
        }
    };
    let size = num(0, 16_384)?.min(64 << 20);
    let subs = num(1, 50)?.min(1_000);
    let batch = num(2, 4)?.min(512);
    let secs = num(3, 3)?.min(60);
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut ins = Vec::new();
    for _ in 0..subs {
        let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        out.push(s);
        ins.push(l.accept().map_err(|e| e.to_string())?.0);
    }
    let reader = std::thread::spawn(move || drain(ins));
    pin(0);
    let head = [0x30u8, 0, 0, 0, 0];
    let payload = vec![0x5au8; size];
    let mut iov = Vec::with_capacity(2 * batch);
    for _ in 0..batch {
        iov.push(IoSlice::new(&head));
        iov.push(IoSlice::new(&payload));
    }
    let tck = crate::sys::clk_tck();
    let t0 = thread_ticks().ok_or("no /proc/thread-self/stat")?;
    let start = Instant::now();
    let mut deliveries = 0u64;
    // Bounded by time, checked once per pass over the connections.
    while start.elapsed() < Duration::from_secs(secs as u64) {
        for s in &mut out {
            write_all_vectored(s, &iov).map_err(|e| e.to_string())?;
            deliveries += batch as u64;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_ticks()
        .ok_or("no /proc/thread-self/stat")?
        .saturating_sub(t0) as f64
        / tck;
    drop(out);
    let _ = reader.join();
    Ok(format!(
        "FLOOR size={size} subscribers={subs} batch={batch} deliveries={deliveries} \
         wall_s={wall:.3} writer_cpu_s={cpu:.3} cpu_us_per_delivery={:.3} deliveries_per_s={:.0}",
        cpu * 1e6 / deliveries.max(1) as f64,
        deliveries as f64 / wall.max(1e-9)
    ))
}

/// A blocking vectored write of all of `iov`, however many calls it takes.
fn write_all_vectored(s: &mut TcpStream, iov: &[IoSlice<'_>]) -> io::Result<()> {
    let mut bufs: Vec<IoSlice<'_>> = iov.to_vec();
    let mut slices = &mut bufs[..];
    while !slices.is_empty() {
        match s.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads every connection until each reaches end of file, discarding the bytes in the kernel.
fn drain(ins: Vec<TcpStream>) -> u64 {
    use mio::net::TcpStream as MioStream;
    use mio::{Events, Interest, Poll, Token};
    pin(1);
    let Ok(mut poll) = Poll::new() else {
        return 0;
    };
    let mut socks: Vec<Option<MioStream>> = Vec::new();
    for (i, s) in ins.into_iter().enumerate() {
        if s.set_nonblocking(true).is_err() {
            return 0;
        }
        let mut m = MioStream::from_std(s);
        if poll
            .registry()
            .register(&mut m, Token(i), Interest::READABLE)
            .is_err()
        {
            return 0;
        }
        socks.push(Some(m));
    }
    let mut room = vec![0u8; 4 << 20];
    let mut events = Events::with_capacity(1024);
    let mut open = socks.len();
    let mut total = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while open > 0 && Instant::now() < deadline {
        if poll
            .poll(&mut events, Some(Duration::from_millis(100)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let Some(slot) = socks.get_mut(ev.token().0) else {
                continue;
            };
            let Some(s) = slot.as_ref() else {
                continue;
            };
            loop {
                match recv(s.as_raw_fd(), &mut room, MsgFlags::MSG_TRUNC) {
                    Ok(0) => {
                        *slot = None;
                        open -= 1;
                        break;
                    }
                    Ok(n) => total += n as u64,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
        }
    }
    total
}
