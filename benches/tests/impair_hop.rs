//! The impairment hop on a real path: a UDP echo server in its own namespace behind the router
//! namespace, this test the client. Delay, loss and the bottleneck are seen from outside, as a
//! WebRTC peer would see them, and a profile change applies at once.

use edgedesk_bench::impair::topology::{unavailable, Impaired};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

const ECHO: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.bind((sys.argv[1],9000))\n\
print('ready',flush=True)\n\
while True:\n    d,a=s.recvfrom(65535)\n    s.sendto(d,a)\n";

fn echo_server(schedule: &str) -> Option<Impaired> {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    let hop = Path::new(env!("CARGO_BIN_EXE_edgedesk-bench"));
    let mut s = Impaired::spawn(
        hop,
        schedule,
        Path::new("/usr/bin/python3"),
        &["-c".into(), ECHO.into(), "{inside}".into()],
        &[],
    )
    .expect("topology");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(s.server.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    Some(s)
}

/// Sends `n` datagrams of `size` bytes every `gap`, returns the round trips of the echoes seen.
fn probe(to: &str, n: usize, size: usize, gap: Duration) -> Vec<Duration> {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.connect(format!("{to}:9000")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut sent_at = Vec::new();
    let mut rtts = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let start = Instant::now();
    let mut collect = |rtts: &mut Vec<Duration>, sent_at: &[Instant]| {
        while let Ok(len) = sock.recv(&mut buf) {
            let k = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert!(len == size);
            rtts.push(sent_at[k].elapsed());
        }
    };
    for k in 0..n {
        let mut p = vec![0u8; size];
        p[..4].copy_from_slice(&(k as u32).to_le_bytes());
        sent_at.push(Instant::now());
        sock.send(&p).unwrap();
        let next = start + gap * (k as u32 + 1);
        while Instant::now() < next {
            collect(&mut rtts, &sent_at);
        }
    }
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        collect(&mut rtts, &sent_at);
    }
    rtts
}

#[test]
fn delay_and_loss_are_what_the_profile_says_and_change_at_once() {
    let Some(mut s) = echo_server("loss=20%,delay=15ms") else {
        return;
    };
    // Let the path settle (neighbour discovery) before measuring.
    probe(&s.inside, 5, 100, Duration::from_millis(20));
    let rtts = probe(&s.inside, 400, 200, Duration::from_millis(2));
    let got = rtts.len() as f64 / 400.0;
    assert!((0.72..0.88).contains(&got), "{got} of the echoes came back");
    let min = rtts.iter().min().unwrap();
    assert!(
        *min >= Duration::from_millis(30) && *min < Duration::from_millis(40),
        "RTT {min:?}"
    );
    let stats = s.stats().unwrap();
    assert!(stats["down"]["lost"].as_u64().unwrap() > 40, "{stats}");
    assert_eq!(stats["up"]["lost"].as_u64().unwrap(), 0, "{stats}");

    s.set("clean").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let rtts = probe(&s.inside, 200, 200, Duration::from_millis(2));
    assert!(rtts.len() >= 198, "{} echoes after clean", rtts.len());
    let max = rtts.iter().max().unwrap();
    assert!(
        *max < Duration::from_millis(10),
        "RTT {max:?} on a clean link"
    );
}

#[test]
fn the_bottleneck_holds_its_rate_and_its_queue() {
    // 1 Mbit/s with 50 ms of queue; 1000-byte echoes at 4 Mbit/s for one second.
    let Some(mut s) = echo_server("rate=1M,queue=50ms") else {
        return;
    };
    probe(&s.inside, 5, 100, Duration::from_millis(20));
    let rtts = probe(&s.inside, 500, 1000, Duration::from_millis(2));
    // A quarter get through (the rate), none waits much over the queue.
    let got = rtts.len() as f64 / 500.0;
    assert!((0.2..0.32).contains(&got), "{got} of the echoes came back");
    let max = rtts.iter().max().unwrap();
    assert!(*max < Duration::from_millis(75), "RTT {max:?}");
    let stats = s.stats().unwrap();
    assert!(
        stats["down"]["queue_drops"].as_u64().unwrap() > 300,
        "{stats}"
    );
}
