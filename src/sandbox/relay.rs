//! The caller's side while a sandbox runs: output lines to the callback, the pseudo-terminal
//! relayed to the caller's terminal, signals forwarded, and the wait for the sandbox's process.

use super::{Error, OutputStream};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Signals blocked in the calling thread and read from a signalfd while the sandbox runs.
pub struct SignalForwarding {
    fd: SignalFd,
    previous: SigSet,
}

impl SignalForwarding {
    /// None unless `forward`; with a terminal, SIGWINCH is watched too (to resize it).
    pub fn start(forward: bool, tty: bool) -> Result<Option<SignalForwarding>, Error> {
        if !forward {
            return Ok(None);
        }
        let mut set = SigSet::empty();
        for signal in FORWARDED {
            set.add(signal);
        }
        if tty {
            set.add(Signal::SIGWINCH);
        }
        let mut previous = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))
            .map_err(|e| Error::io("blocking signals")(e.into()))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| Error::io("creating a signalfd")(e.into()))?;
        Ok(Some(SignalForwarding { fd, previous }))
    }
}

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// The caller's terminal in raw mode, restored on drop.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw)
            .ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

fn copy_window_size(master: RawFd) {
    // SAFETY: winsize is plain data; failures leave the default size.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut size) == 0
            || libc::ioctl(1, libc::TIOCGWINSZ, &mut size) == 0
        {
            libc::ioctl(master, libc::TIOCSWINSZ, &size);
        }
    }
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid slice.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            return;
        }
        bytes = bytes.get(written as usize..).unwrap_or_default();
    }
}

/// Reads what is available; Ok(0) at end of stream (EIO on a hung-up terminal counts as end).
fn read_some(fd: RawFd, buffer: &mut [u8]) -> Result<usize, nix::errno::Errno> {
    loop {
        // SAFETY: reads into a valid buffer.
        let read = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if read >= 0 {
            return Ok(read as usize);
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::EINTR => continue,
            nix::errno::Errno::EIO => return Ok(0),
            errno => return Err(errno),
        }
    }
}

/// Splits a stream into lines for the callback.
struct LineSplitter {
    stream: OutputStream,
    fd: OwnedFd,
    pending: Vec<u8>,
    open: bool,
}

impl LineSplitter {
    fn feed(&mut self, data: &[u8], on_line: &mut dyn FnMut(OutputStream, &[u8])) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(offset) = self
            .pending
            .get(start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            if let Some(line) = self.pending.get(start..start + offset) {
                on_line(self.stream, line);
            }
            start += offset + 1;
        }
        self.pending.drain(..start);
    }

    fn finish(&mut self, on_line: &mut dyn FnMut(OutputStream, &[u8])) {
        if !self.pending.is_empty() {
            on_line(self.stream, &self.pending);
            self.pending.clear();
        }
        self.open = false;
    }
}

/// What the caller watches while the sandbox's process (`pid`, a child of this process) runs.
pub struct Relay {
    pub pid: i32,
    pub outputs: Vec<(OutputStream, OwnedFd)>,
    pub tty_master: Option<OwnedFd>,
    pub tty_stdin: bool,
    pub forwarding: Option<SignalForwarding>,
}

impl Relay {
    /// Runs until the process exits; returns its raw wait status once all output is delivered.
    pub fn pump(self, on_line: &mut dyn FnMut(OutputStream, &[u8])) -> Result<i32, Error> {
        // SAFETY: pidfd_open returns a new descriptor we own.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) } as RawFd;
        if pidfd < 0 {
            return Err(Error::io("watching the sandbox process")(
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: just created, owned here.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let _raw_mode = match &self.tty_master {
            Some(master) => {
                copy_window_size(master.as_raw_fd());
                // SAFETY: isatty only inspects the descriptor.
                if self.tty_stdin && unsafe { libc::isatty(0) } == 1 {
                    RawMode::enable()
                } else {
                    None
                }
            }
            None => None,
        };
        let mut splitters: Vec<LineSplitter> = self
            .outputs
            .into_iter()
            .map(|(stream, fd)| LineSplitter {
                stream,
                fd,
                pending: Vec::new(),
                open: true,
            })
            .collect();
        let master = self.tty_master.as_ref().map(|m| m.as_raw_fd());
        let mut master_open = master.is_some();
        let mut stdin_open = self.tty_stdin && master.is_some();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let mut polled = vec![libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let watch = |fd: RawFd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            for splitter in &splitters {
                polled.push(watch(if splitter.open {
                    splitter.fd.as_raw_fd()
                } else {
                    -1
                }));
            }
            polled.push(watch(if master_open {
                master.unwrap_or(-1)
            } else {
                -1
            }));
            polled.push(watch(if stdin_open { 0 } else { -1 }));
            polled.push(watch(
                self.forwarding.as_ref().map_or(-1, |f| f.fd.as_raw_fd()),
            ));
            // SAFETY: polls a valid array.
            let ready =
                unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, -1) };
            if ready < 0 {
                if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                    continue;
                }
                return Err(Error::io("waiting for the sandbox")(
                    std::io::Error::last_os_error(),
                ));
            }
            let revents = |index: usize| polled.get(index).map_or(0, |p| p.revents);
            for (index, splitter) in splitters.iter_mut().enumerate() {
                if splitter.open && revents(index + 1) != 0 {
                    match read_some(splitter.fd.as_raw_fd(), &mut buffer) {
                        Ok(0) | Err(_) => splitter.finish(on_line),
                        Ok(n) => splitter.feed(buffer.get(..n).unwrap_or_default(), on_line),
                    }
                }
            }
            let base = splitters.len() + 1;
            if let Some(master) = master
                && master_open
                && revents(base) != 0
            {
                match read_some(master, &mut buffer) {
                    Ok(0) | Err(_) => master_open = false,
                    Ok(n) => write_all(1, buffer.get(..n).unwrap_or_default()),
                }
            }
            if let Some(master) = master
                && stdin_open
                && revents(base + 1) != 0
            {
                match read_some(0, &mut buffer) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => write_all(master, buffer.get(..n).unwrap_or_default()),
                }
            }
            if let Some(forwarding) = &mut self.forwarding.as_ref()
                && revents(base + 2) != 0
            {
                while let Ok(Some(info)) = forwarding.fd.read_signal() {
                    let signal = info.ssi_signo as i32;
                    if signal == libc::SIGWINCH {
                        if let Some(master) = master {
                            copy_window_size(master);
                        }
                    } else {
                        // SAFETY: the pid is our unreaped child.
                        unsafe { libc::kill(self.pid, signal) };
                    }
                }
            }
            if revents(0) != 0 {
                break;
            }
        }
        let mut status = 0;
        // SAFETY: reaps our own child.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0 {
            if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                return Err(Error::io("waiting for the sandbox")(
                    std::io::Error::last_os_error(),
                ));
            }
        }
        // Every writer is gone now: drain what is left.
        for splitter in splitters.iter_mut().filter(|s| s.open) {
            while let Ok(n) = read_some(splitter.fd.as_raw_fd(), &mut buffer) {
                if n == 0 {
                    break;
                }
                splitter.feed(buffer.get(..n).unwrap_or_default(), on_line);
            }
            splitter.finish(on_line);
        }
        if let Some(master) = master.filter(|_| master_open) {
            // SAFETY: makes our own descriptor non-blocking.
            unsafe { libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK) };
            while let Ok(n) = read_some(master, &mut buffer) {
                if n == 0 {
                    break;
                }
                write_all(1, buffer.get(..n).unwrap_or_default());
            }
        }
        Ok(status)
    }
}

/// Receives the terminal master the sandbox sends over the console socket; None when the
/// sandbox failed before sending it.
pub fn receive_fd(socket: &OwnedFd) -> Result<Option<OwnedFd>, Error> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = nix::sys::socket::recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::io("receiving the terminal")(e.into()))?;
    for control in message
        .cmsgs()
        .map_err(|e| Error::io("receiving the terminal")(e.into()))?
    {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = control
            && let Some(&fd) = fds.first()
        {
            // SAFETY: received with SCM_RIGHTS: a new descriptor owned by us.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(None)
}
