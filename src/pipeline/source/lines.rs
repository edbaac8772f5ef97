//! The line source: one record per line of a file or stdin (partition -1,
//! the line number as offset, one generation). Nothing is committed: a
//! file run ends when its input does.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::{Handoff, Refused, Source, BATCH};
use crate::pipeline::batch::{Coord, Topics};
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::{Committer, Progress};

pub struct LinesSource {
    input: Box<dyn BufRead + Send>,
    name: String,
    topic: u32,
}

impl LinesSource {
    /// Tells the tracker the input's one "partition" is held.
    pub fn new(
        input: Box<dyn BufRead + Send>,
        name: String,
        topics: &Topics,
        progress: &Sender<Progress>,
    ) -> LinesSource {
        let topic = topics.id(&name);
        let _ = progress.send(Progress::Assigned(vec![(topic, -1, 1)]));
        LinesSource { input, name, topic }
    }
}

impl Source for LinesSource {
    fn read(&mut self, out: &Handoff, supervisor: &Supervisor) -> Result<(), String> {
        let mut batch = out.fresh();
        let mut announced = 0;
        let mut line = Vec::new();
        let mut line_no = 0i64;
        // A file never pauses: a full queue just blocks the hand-over (and
        // the stop flag is looked at every second meanwhile).
        let hand_over = |mut batch, announced: &mut usize| loop {
            match out.offer(batch, announced, Duration::from_secs(1)) {
                Ok(()) => return Ok(true),
                Err(Refused::Gone) => return Err("the workers stopped".to_owned()),
                Err(Refused::Full(b)) if supervisor.stopping() => {
                    drop(b);
                    return Ok(false);
                }
                Err(Refused::Full(b)) => batch = b,
            }
        };
        while !supervisor.stopping() {
            line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{}: read failed after line {line_no}: {e}", self.name))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let coord = Coord {
                topic: self.topic,
                partition: -1,
                epoch: 1,
                offset: line_no,
            };
            batch.push(coord, &line);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, out.fresh());
                if !hand_over(full, &mut announced)? {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            hand_over(batch, &mut announced)?;
        }
        Ok(())
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        None
    }
}
