//! Changed regions of a frame, so capture, colour conversion and the copy into an encoder's
//! picture touch only what changed since the picture they already hold.
//!
//! A producer numbers its frames (`VideoFrame::sequence`, from 1) and says for each one which
//! rectangles differ from an earlier frame ([`Damage`]). A consumer that keeps a buffer across
//! frames (the capturer's frame pool, the converted YUV frame, an encoder's input picture)
//! knows which sequence it holds and asks a [`DamageLog`] what changed since then: the union of
//! the rectangles of every frame in between, or `None` (update everything) when the chain is
//! broken, too old or unknown. `None` is always safe; a rectangle set is a promise that every
//! pixel outside it is unchanged.
//!
//! Rectangle lists stay short ([`MAX_RECTS`]): past that the two rectangles whose bounding box
//! wastes the least area are merged, so a scattered update costs a little overdraw, never a
//! long list.

use std::collections::VecDeque;

/// Most rectangles a [`RectSet`] keeps before merging.
pub const MAX_RECTS: usize = 16;

/// An axis-aligned rectangle of pixels, `w` x `h` at (`x`, `y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Rect { x, y, w, h }
    }

    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }

    fn right(&self) -> u32 {
        self.x + self.w
    }

    fn bottom(&self) -> u32 {
        self.y + self.h
    }

    /// The smallest rectangle holding both.
    pub fn bounding(&self, o: &Rect) -> Rect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        let (x, y) = (self.x.min(o.x), self.y.min(o.y));
        Rect::new(
            x,
            y,
            self.right().max(o.right()) - x,
            self.bottom().max(o.bottom()) - y,
        )
    }

    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x && o.y >= self.y && o.right() <= self.right() && o.bottom() <= self.bottom()
    }

    /// The part inside a `width` x `height` frame (possibly empty).
    pub fn clip(&self, width: u32, height: u32) -> Rect {
        let (x, y) = (self.x.min(width), self.y.min(height));
        Rect::new(
            x,
            y,
            self.right().min(width) - x,
            self.bottom().min(height) - y,
        )
    }

    /// Grown to even coordinates and sizes (whole 2x2 chroma blocks of 4:2:0), then clipped
    /// to a `width` x `height` frame.
    pub fn align_even(&self, width: u32, height: u32) -> Rect {
        let (x, y) = (self.x & !1, self.y & !1);
        let (r, b) = ((self.right() + 1) & !1, (self.bottom() + 1) & !1);
        Rect::new(x, y, r - x, b - y).clip(width, height)
    }

    /// A rectangle from signed X11 coordinates (may lie partly off screen), clipped.
    pub fn from_x11(x: i16, y: i16, w: u16, h: u16, width: u32, height: u32) -> Rect {
        let (x0, y0) = (i64::from(x).max(0), i64::from(y).max(0));
        let (x1, y1) = (
            (i64::from(x) + i64::from(w)).clamp(0, i64::from(width)),
            (i64::from(y) + i64::from(h)).clamp(0, i64::from(height)),
        );
        if x1 <= x0 || y1 <= y0 {
            return Rect::default();
        }
        Rect::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)
    }
}

/// A short list of rectangles covering a region (possibly a little more than it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RectSet {
    rects: Vec<Rect>,
}

impl RectSet {
    pub fn new() -> Self {
        RectSet::default()
    }

    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    pub fn clear(&mut self) {
        self.rects.clear();
    }

    /// Pixels covered, counting overlaps twice (an upper bound of the region's area).
    pub fn area(&self) -> u64 {
        self.rects.iter().map(Rect::area).sum()
    }

    /// Adds `r`: dropped if a rectangle already holds it, replacing those it holds, and
    /// merging the cheapest pair while more than [`MAX_RECTS`] remain.
    pub fn add(&mut self, r: Rect) {
        if r.is_empty() || self.rects.iter().any(|o| o.contains(&r)) {
            return;
        }
        self.rects.retain(|o| !r.contains(o));
        self.rects.push(r);
        while self.rects.len() > MAX_RECTS {
            self.merge_cheapest_pair();
        }
    }

    pub fn extend(&mut self, rects: &[Rect]) {
        for r in rects {
            self.add(*r);
        }
    }

    fn merge_cheapest_pair(&mut self) {
        let mut best = (u64::MAX, 0, 1);
        for i in 0..self.rects.len() {
            for j in i + 1..self.rects.len() {
                let (a, b) = (&self.rects[i], &self.rects[j]);
                let waste = a.bounding(b).area().saturating_sub(a.area() + b.area());
                if waste < best.0 {
                    best = (waste, i, j);
                }
            }
        }
        let (_, i, j) = best;
        let b = self.rects.swap_remove(j);
        let merged = self.rects.swap_remove(i).bounding(&b);
        // The merged box may now hold others; add() drops them.
        self.add(merged);
    }

    pub fn into_vec(self) -> Vec<Rect> {
        self.rects
    }
}

/// Which pixels of a frame differ from frame number `since` of the same producer: only those
/// inside `rects` (which may be empty: nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub since: u64,
    pub rects: Vec<Rect>,
}

/// The recent frames' [`Damage`], to answer "what changed since frame N".
#[derive(Debug, Clone)]
pub struct DamageLog {
    /// `(sequence, damage)`, oldest first; `None`: that frame changed everything.
    entries: VecDeque<(u64, Option<Damage>)>,
    capacity: usize,
}

impl Default for DamageLog {
    fn default() -> Self {
        DamageLog::new(16)
    }
}

impl DamageLog {
    /// A log remembering the last `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        DamageLog {
            entries: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Records frame `sequence` (larger than every earlier one) and how it differs from an
    /// earlier frame (`None`: from every frame).
    pub fn push(&mut self, sequence: u64, damage: Option<Damage>) {
        if self
            .entries
            .back()
            .is_some_and(|(last, _)| *last >= sequence)
        {
            // Out of order: nothing before this frame can be trusted any more.
            self.entries.clear();
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((sequence, damage));
    }

    /// Forgets everything (a resize: no earlier frame is comparable).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The newest frame recorded.
    pub fn newest(&self) -> Option<u64> {
        self.entries.back().map(|(s, _)| *s)
    }

    /// The rectangles that changed between frame `held` and the newest frame, or `None` when
    /// that is not known (`held` is 0, too old, newer than the log, or a frame in between
    /// changed everything).
    pub fn since(&self, held: u64) -> Option<RectSet> {
        let newest = self.newest()?;
        if held == 0 || held > newest {
            return None;
        }
        let mut out = RectSet::new();
        // Covered so far: (low, newest].
        let mut low = newest;
        for (seq, damage) in self.entries.iter().rev() {
            if low <= held {
                break;
            }
            if *seq != low {
                return None; // A frame in between is missing.
            }
            let d = damage.as_ref()?;
            out.extend(&d.rects);
            low = d.since;
        }
        (low <= held).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(since: u64, rects: &[Rect]) -> Option<Damage> {
        Some(Damage {
            since,
            rects: rects.to_vec(),
        })
    }

    #[test]
    fn rect_geometry() {
        let a = Rect::new(10, 10, 10, 10);
        let b = Rect::new(15, 5, 10, 10);
        assert_eq!(a.bounding(&b), Rect::new(10, 5, 15, 15));
        assert!(a.contains(&Rect::new(12, 12, 8, 8)));
        assert_eq!(Rect::new(5, 5, 10, 10).clip(8, 12), Rect::new(5, 5, 3, 7));
        assert!(Rect::new(20, 0, 5, 5).clip(8, 8).is_empty());
        assert_eq!(
            Rect::new(3, 5, 4, 4).align_even(100, 100),
            Rect::new(2, 4, 6, 6)
        );
        assert_eq!(
            Rect::new(3, 5, 4, 4).align_even(7, 9),
            Rect::new(2, 4, 5, 5)
        );
        assert_eq!(
            Rect::from_x11(-5, 3, 10, 4, 100, 100),
            Rect::new(0, 3, 5, 4)
        );
        assert!(Rect::from_x11(-20, 3, 10, 4, 100, 100).is_empty());
        assert_eq!(
            Rect::from_x11(95, 98, 10, 10, 100, 100),
            Rect::new(95, 98, 5, 2)
        );
    }

    #[test]
    fn rect_set_drops_contained_and_merges_past_the_cap() {
        let mut s = RectSet::new();
        s.add(Rect::new(0, 0, 10, 10));
        s.add(Rect::new(2, 2, 3, 3));
        assert_eq!(s.rects(), &[Rect::new(0, 0, 10, 10)]);
        s.add(Rect::new(0, 0, 20, 20));
        assert_eq!(s.rects(), &[Rect::new(0, 0, 20, 20)]);
        s.clear();
        // A row of small squares: merging keeps neighbours together and covers every one.
        let squares: Vec<Rect> = (0..40).map(|i| Rect::new(i * 20, 0, 4, 4)).collect();
        s.extend(&squares);
        assert!(s.rects().len() <= MAX_RECTS);
        for q in &squares {
            assert!(s.rects().iter().any(|r| r.contains(q)), "{q:?} lost");
        }
        assert!(s.area() < 784 * 4, "less than one bounding box");
    }

    #[test]
    fn log_unions_the_frames_in_between() {
        let mut log = DamageLog::new(8);
        let (a, b, c) = (
            Rect::new(0, 0, 4, 4),
            Rect::new(10, 10, 4, 4),
            Rect::new(20, 20, 4, 4),
        );
        log.push(1, None);
        log.push(2, d(1, &[a]));
        log.push(3, d(2, &[b]));
        log.push(4, d(3, &[c]));
        assert_eq!(log.since(4).unwrap().rects(), &[] as &[Rect]);
        assert_eq!(log.since(3).unwrap().rects(), &[c]);
        assert_eq!(log.since(1).unwrap().rects(), &[c, b, a]);
        // Frame 1 changed everything: nothing older is comparable.
        assert!(log.since(0).is_none());
        log.push(5, None);
        assert!(log.since(3).is_none());
        assert!(log.since(5).unwrap().is_empty());
        assert!(log.since(6).is_none(), "newer than the log");
    }

    #[test]
    fn log_follows_merged_entries_and_refuses_gaps() {
        let mut log = DamageLog::new(8);
        let (a, b) = (Rect::new(0, 0, 4, 4), Rect::new(10, 10, 4, 4));
        log.push(3, d(2, &[a]));
        // Frame 4 was dropped; frame 5 carries its damage, relative to frame 3.
        log.push(5, d(3, &[b]));
        assert_eq!(log.since(3).unwrap().rects(), &[b]);
        assert_eq!(log.since(2).unwrap().rects(), &[b, a]);
        assert!(log.since(1).is_none(), "older than the log");
        assert!(
            log.since(4).unwrap().rects() == [b],
            "covered by 5's damage"
        );
        // A frame whose base is not the previous entry: a gap.
        log.push(9, d(7, &[a]));
        assert!(log.since(5).is_none());
        assert_eq!(log.since(7).unwrap().rects(), &[a]);
    }

    #[test]
    fn log_forgets_past_its_capacity_and_out_of_order_frames() {
        let mut log = DamageLog::new(2);
        log.push(1, d(0, &[]));
        log.push(2, d(1, &[]));
        log.push(3, d(2, &[]));
        assert!(log.since(1).is_some());
        assert!(log.since(0).is_none());
        log.push(4, d(3, &[]));
        assert!(log.since(1).is_none(), "entry 2 was forgotten");
        assert!(log.since(2).is_some());
        log.push(2, d(1, &[]));
        assert_eq!(log.newest(), Some(2));
        assert!(log.since(1).is_some());
        assert!(log.since(0).is_none());
    }
}
