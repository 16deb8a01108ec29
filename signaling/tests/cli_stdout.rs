//! `edgedesk up` keeps serving when nobody reads its stdout any more (`edgedesk up | head -1`,
//! a script that found its line and closed the pipe): printing the connect lines must not take
//! the server down.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    // A pipe whose read end is already closed: every write to it fails (EPIPE).
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two new file descriptors we then own.
    assert_eq!(unsafe { libc_pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .args([
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--size",
            "640x360",
        ])
        .args(["--app", "", "--wm", "", "--token", "t"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let healthy = loop {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = write!(c, "GET /healthz HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = c.read_to_string(&mut reply);
            if reply.ends_with("ok") {
                break true;
            }
        }
        if started.elapsed() > Duration::from_secs(15) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Still running a moment later (it printed its lines into the closed pipe meanwhile).
    std::thread::sleep(Duration::from_millis(300));
    let exited = server.try_wait().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(healthy, "the server never answered /healthz");
    assert_eq!(exited, None, "the server exited: {exited:?}");
}

extern "C" {
    #[link_name = "pipe"]
    fn libc_pipe(fds: *mut i32) -> i32;
}
