//! The live terminal view: one line per running step with its elapsed time and the last line
//! of its output; finished steps stay as `DONE 1.2s` or `CACHED` lines above.

use super::{Event, Renderer, StepId};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

/// Longest tail of a step's output shown on its live line.
const OUTPUT_TAIL: usize = 60;

pub struct Tty {
    bars: MultiProgress,
    steps: HashMap<StepId, Step>,
}

struct Step {
    name: String,
    bar: ProgressBar,
}

impl Tty {
    pub fn new() -> Self {
        Tty {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            steps: HashMap::new(),
        }
    }

    fn close_step(&mut self, step: StepId, status: &str) {
        if let Some(s) = self.steps.remove(&step) {
            s.bar
                .set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| plain()));
            s.bar
                .finish_with_message(format!("{status:>10} {}", s.name));
        }
    }
}

fn plain() -> ProgressStyle {
    ProgressStyle::default_spinner()
}

fn running() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {elapsed:>5} {msg}").unwrap_or_else(|_| plain())
}

/// The last `OUTPUT_TAIL` characters of a line, cut on a character boundary.
fn tail(line: &str) -> &str {
    let count = line.chars().count();
    match line.char_indices().nth(count.saturating_sub(OUTPUT_TAIL)) {
        Some((i, _)) => &line[i..],
        None => line,
    }
}

impl Renderer for Tty {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { step, name } => {
                let bar = self.bars.add(ProgressBar::new_spinner());
                bar.set_style(running());
                bar.set_message(name.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                self.steps.insert(
                    *step,
                    Step {
                        name: name.clone(),
                        bar,
                    },
                );
            }
            Event::Output { step, line, .. } => {
                if let Some(s) = self.steps.get(step) {
                    s.bar
                        .set_message(format!("{} │ {}", s.name, tail(line.trim_end())));
                }
            }
            Event::CacheMiss { .. } => {}
            Event::Cached { step } => self.close_step(*step, "CACHED"),
            Event::Done { step, seconds } => self.close_step(*step, &format!("DONE {seconds:.1}s")),
            Event::Failed { step, error } => {
                self.close_step(*step, "ERROR");
                let _ = self.bars.println(format!("ERROR: {error}"));
            }
        }
    }

    fn finish(&mut self) {
        for (_, s) in self.steps.drain() {
            s.bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_end_of_long_lines_on_char_boundaries() {
        assert_eq!(tail("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(tail(&long).chars().count(), 60);
    }
}
