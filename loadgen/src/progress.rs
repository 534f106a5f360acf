//! A live progress bar on a terminal: users launched, responses by result, responses per
//! second. Silent when stdout is not a terminal or CI is set.

use std::{io::IsTerminal, sync::Arc, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

use crate::history::History;

#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("CI").is_none()
}

impl Progress {
    pub fn start(history: Arc<History>, expected: u64) -> Self {
        if !wanted() {
            return Self {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::new(expected);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} responses  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let task = tokio::spawn({
            let bar = bar.clone();
            async move {
                let mut last = (0u64, tokio::time::Instant::now());
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let total = history.total();
                    let now = tokio::time::Instant::now();
                    let rate = (total - last.0) as f64
                        / now.duration_since(last.1).as_secs_f64().max(1e-3);
                    last = (total, now);
                    let counts: Vec<String> = history
                        .counts()
                        .into_iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(c, n)| format!("{} {n}", c.as_str()))
                        .collect();
                    bar.set_position(total);
                    bar.set_message(format!(
                        "users {}  {}  {rate:.0} req/s",
                        history.started_users(),
                        counts.join(", ")
                    ));
                }
            }
        });
        Self {
            bar: Some(bar),
            task: Some(task),
        }
    }

    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
