//! Renderers for build events: tty, plain, json, quiet.
//!
//! The build engine emits [`Event`]s; one [`Renderer`] chosen by `--progress` turns them into
//! what the user sees on stderr. `plain` follows BuildKit's numbered format
//! (`#5 [build 2/4] RUN make`, `#5 0.215 output`, `#5 DONE 1.2s`) so logs read the same as
//! docker build's; `json` gives one event per line for tools.

use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

mod tty;

/// Identifies one step of a build; the renderers number steps from 1 as BuildKit does.
pub type StepId = usize;

/// Which output stream of a running step a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What happened in a build, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step began; `name` reads like BuildKit's, e.g. `[build 2/4] RUN make`.
    Started { step: StepId, name: String },
    /// The step's cache key matched nothing; `reason` names the input that changed.
    CacheMiss { step: StepId, reason: String },
    /// The step's result came from the cache; it does not run.
    Cached { step: StepId },
    /// One line the running step wrote, without its line ending.
    Output {
        step: StepId,
        stream: Stream,
        line: String,
    },
    /// The step finished.
    Done { step: StepId, seconds: f64 },
    /// The step failed; `error` is the whole message shown to the user.
    Failed { step: StepId, error: String },
}

impl Event {
    pub fn step(&self) -> StepId {
        match self {
            Event::Started { step, .. }
            | Event::CacheMiss { step, .. }
            | Event::Cached { step }
            | Event::Output { step, .. }
            | Event::Done { step, .. }
            | Event::Failed { step, .. } => *step,
        }
    }

    pub fn done(step: StepId, elapsed: Duration) -> Event {
        Event::Done {
            step,
            seconds: elapsed.as_secs_f64(),
        }
    }
}

/// The `--progress` modes of docker build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `tty` when stderr is a terminal, `plain` otherwise.
    Auto,
    Tty,
    Plain,
    Json,
    Quiet,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "tty" => Ok(Mode::Tty),
            "plain" => Ok(Mode::Plain),
            "json" | "rawjson" => Ok(Mode::Json),
            "quiet" => Ok(Mode::Quiet),
            other => Err(format!(
                "invalid progress mode {other:?}: expected auto, tty, plain, json or quiet"
            )),
        }
    }
}

/// Turns build events into output.
pub trait Renderer: Send {
    fn event(&mut self, event: &Event);
    /// Called once when the build ends, successful or not: clears live views, flushes.
    fn finish(&mut self) {}
}

/// The renderer for `mode`, writing to stderr as docker build does.
pub fn to_stderr(mode: Mode) -> Box<dyn Renderer> {
    let mode = match mode {
        Mode::Auto if io::stderr().is_terminal() => Mode::Tty,
        Mode::Auto => Mode::Plain,
        other => other,
    };
    match mode {
        Mode::Tty => Box::new(tty::Tty::new()),
        Mode::Json => Box::new(Json::new(io::stderr())),
        Mode::Quiet => Box::new(Quiet),
        Mode::Plain | Mode::Auto => Box::new(Plain::new(io::stderr())),
    }
}

/// BuildKit's plain format: every line of every step, nothing clipped.
pub struct Plain<W: Write> {
    out: W,
    started: HashMap<StepId, Instant>,
}

impl<W: Write> Plain<W> {
    pub fn new(out: W) -> Self {
        Plain {
            out,
            started: HashMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn write(&mut self, event: &Event) -> io::Result<()> {
        let n = event.step() + 1;
        match event {
            Event::Started { step, name } => {
                self.started.insert(*step, Instant::now());
                writeln!(self.out, "#{n} {name}")
            }
            Event::CacheMiss { reason, .. } => writeln!(self.out, "#{n} cache miss: {reason}"),
            Event::Cached { .. } => writeln!(self.out, "#{n} CACHED\n"),
            Event::Output { step, line, .. } => {
                let t = self
                    .started
                    .get(step)
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                writeln!(self.out, "#{n} {t:.3} {line}")
            }
            Event::Done { seconds, .. } => writeln!(self.out, "#{n} DONE {seconds:.1}s\n"),
            Event::Failed { error, .. } => writeln!(self.out, "#{n} ERROR: {error}\n"),
        }
    }
}

impl<W: Write + Send> Renderer for Plain<W> {
    fn event(&mut self, event: &Event) {
        // Progress is best effort: a closed stderr must not fail the build.
        let _ = self.write(event);
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// One JSON object per line per event.
pub struct Json<W: Write> {
    out: W,
}

impl<W: Write> Json<W> {
    pub fn new(out: W) -> Self {
        Json { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Renderer for Json<W> {
    /// Each event with `time`, seconds since the Unix epoch, so tools can see what overlapped.
    fn event(&mut self, event: &Event) {
        let Ok(mut value) = serde_json::to_value(event) else {
            return;
        };
        if let Some(object) = value.as_object_mut() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            object.insert("time".into(), now.into());
        }
        let _ = writeln!(self.out, "{value}");
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// Shows nothing: with `-q` only the image ID is printed, by the command itself.
pub struct Quiet;

impl Renderer for Quiet {
    fn event(&mut self, _: &Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_step() -> Vec<Event> {
        vec![
            Event::Started {
                step: 4,
                name: "[build 2/4] RUN make".into(),
            },
            Event::CacheMiss {
                step: 4,
                reason: "file src/main.c changed".into(),
            },
            Event::Output {
                step: 4,
                stream: Stream::Stdout,
                line: "cc -o app main.c".into(),
            },
            Event::done(4, Duration::from_millis(1230)),
        ]
    }

    #[test]
    fn plain_numbers_steps_like_buildkit() {
        let mut plain = Plain::new(Vec::new());
        for e in run_step() {
            plain.event(&e);
        }
        let text = String::from_utf8(plain.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#5 [build 2/4] RUN make");
        assert_eq!(lines[1], "#5 cache miss: file src/main.c changed");
        assert!(lines[2].starts_with("#5 0.0"), "{}", lines[2]);
        assert!(lines[2].ends_with(" cc -o app main.c"), "{}", lines[2]);
        assert_eq!(lines[3], "#5 DONE 1.2s");
    }

    #[test]
    fn plain_marks_cached_and_failed_steps() {
        let mut plain = Plain::new(Vec::new());
        plain.event(&Event::Cached { step: 0 });
        plain.event(&Event::Failed {
            step: 1,
            error: "process \"/bin/sh -c false\" did not complete successfully: exit code: 1"
                .into(),
        });
        let text = String::from_utf8(plain.into_inner()).unwrap();
        assert!(text.contains("#1 CACHED\n"));
        assert!(text.contains("#2 ERROR: process \"/bin/sh -c false\""));
    }

    #[test]
    fn json_writes_one_tagged_object_per_event() {
        let mut json = Json::new(Vec::new());
        for e in run_step() {
            json.event(&e);
        }
        let text = String::from_utf8(json.into_inner()).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0]["event"], "started");
        assert_eq!(events[1]["event"], "cache_miss");
        assert_eq!(events[1]["reason"], "file src/main.c changed");
        assert_eq!(events[2]["stream"], "stdout");
        assert_eq!(events[3]["event"], "done");
        assert_eq!(events[3]["seconds"], 1.23);
    }

    #[test]
    fn modes_parse_as_docker_names_them() {
        assert_eq!("plain".parse::<Mode>(), Ok(Mode::Plain));
        assert_eq!("rawjson".parse::<Mode>(), Ok(Mode::Json));
        assert!("fancy".parse::<Mode>().unwrap_err().contains("fancy"));
    }
}
