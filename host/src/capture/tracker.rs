//! What the capturer knows about changes between its frames (see the parent module's "Only
//! what changed"): the rectangles DAMAGE reported since the last grab, what each recent frame
//! changed ([`DamageLog`]) and where the cursor was drawn into each, so a pooled buffer can be
//! brought up to date by the rectangles it lacks.

use std::collections::VecDeque;

use codec::{Damage, DamageLog, Rect, RectSet};

/// Frames of history kept, enough for every buffer of a frame pool.
const LOG_FRAMES: usize = 16;

#[derive(Debug)]
pub(super) struct DamageTracker {
    /// The rectangles DAMAGE reported since the last grab.
    pending: RectSet,
    /// DamageNotify events seen so far.
    events: u64,
    /// What each recent frame changed.
    log: DamageLog,
    /// Where the cursor was drawn in recent frames, `(sequence, area)`, one entry a frame.
    cursor_drawn: VecDeque<(u64, Option<Rect>)>,
    /// The next grab takes the whole root and its changes are unknown.
    full_next: bool,
}

impl DamageTracker {
    /// A tracker whose first grab is whole.
    pub(super) fn new() -> Self {
        DamageTracker {
            pending: RectSet::new(),
            events: 0,
            log: DamageLog::new(LOG_FRAMES),
            cursor_drawn: VecDeque::with_capacity(LOG_FRAMES + 1),
            full_next: true,
        }
    }

    /// A DamageNotify reported `r` (already clipped to the screen).
    pub(super) fn damaged(&mut self, r: Rect) {
        self.events += 1;
        self.pending.add(r);
    }

    /// DamageNotify events seen so far (to tell whether more arrived).
    pub(super) fn events(&self) -> u64 {
        self.events
    }

    /// Forgets everything: the next grab is whole and its changes unknown.
    pub(super) fn invalidate(&mut self) {
        self.full_next = true;
        self.pending.clear();
        self.log.clear();
        self.cursor_drawn.clear();
    }

    /// The rectangles a buffer holding frame `held` of a `width` x `height` screen lacks:
    /// every change logged since, the damage pending now and the cursor drawn into it.
    /// `None`: fetch the whole root.
    pub(super) fn region_for(&self, held: u64, width: u32, height: u32) -> Option<RectSet> {
        if self.full_next {
            return None;
        }
        let mut region = self.log.since(held)?;
        // The buffer's own cursor must go; not remembered: fetch everything.
        let cursor = self.cursor_at(held)?;
        region.extend(self.pending.rects());
        region.extend(cursor.as_slice());
        // Past half the screen, the strips of a whole grab are as cheap.
        let screen = u64::from(width) * u64::from(height);
        (region.area() * 2 <= screen).then_some(region)
    }

    /// Frame `sequence` was grabbed with the cursor drawn at `cursor` (if at all): records
    /// and returns what it changed against the previous frame, the damage reported before
    /// the grab and the cursor's old and new place (`None`: unknown, after an invalidation).
    pub(super) fn frame_done(&mut self, sequence: u64, cursor: Option<Rect>) -> Option<Damage> {
        let mut changed = std::mem::take(&mut self.pending);
        let full = std::mem::take(&mut self.full_next);
        let damage = match self.cursor_at(sequence - 1) {
            Some(previous_cursor) if !full => {
                changed.extend(previous_cursor.as_slice());
                changed.extend(cursor.as_slice());
                Some(Damage {
                    since: sequence - 1,
                    rects: changed.into_vec(),
                })
            }
            _ => None,
        };
        self.log.push(sequence, damage.clone());
        if self.cursor_drawn.len() > LOG_FRAMES {
            self.cursor_drawn.pop_front();
        }
        self.cursor_drawn.push_back((sequence, cursor));
        damage
    }

    /// Where the cursor was drawn in frame `sequence` (`Some(None)`: nowhere); `None` when
    /// that frame is not remembered.
    fn cursor_at(&self, sequence: u64) -> Option<Option<Rect>> {
        self.cursor_drawn
            .iter()
            .find(|(s, _)| *s == sequence)
            .map(|(_, r)| *r)
    }
}
