//! The bench's own accounting: a latency histogram and per-stream sequence tracking.

/// Sub-buckets per power of two above `LINEAR`: values are kept to within 1/64 (1.6 %).
const SUB: u64 = 64;
/// Values below this are counted exactly.
const LINEAR: u64 = 2 * SUB;
/// Octaves above `LINEAR`: enough for 2^(7 + 40) ns, far beyond any run.
const OCTAVES: u64 = 40;

/// A log-linear histogram of nanosecond values (HdrHistogram's idea, in 35 kB).
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (LINEAR + OCTAVES * SUB) as usize],
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as u64; // >= 7
    let shift = msb - 6;
    let m = v >> shift; // in [64, 128)
    let i = LINEAR + (shift - 1) * SUB + (m - SUB);
    (i as usize).min((LINEAR + OCTAVES * SUB) as usize - 1)
}

/// The lowest and highest value a bucket holds.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, i);
    }
    let k = i - LINEAR;
    let shift = k / SUB + 1;
    let m = k % SUB + SUB;
    (m << shift, ((m + 1) << shift) - 1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as u128) as u64
        }
    }

    /// The value at quantile `q` (0 < q <= 1): the smallest recorded value such that at least
    /// `q` of all values are at or below it, to within the bucket's precision (the bucket's
    /// midpoint, clamped to the recorded minimum and maximum). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return (lo + (hi - lo) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// What happened to one received message of a stream.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Seen {
    /// First time, and no higher sequence number seen before.
    InOrder,
    /// First time, but after a higher sequence number (reordered).
    OutOfOrder,
    /// Seen before.
    Duplicate,
}

/// One stream as one receiver sees it: which sequence numbers arrived (a bitset, so
/// duplicates are told from late arrivals exactly), how many more than once, how many after a
/// higher one. Lost = published - unique, at the end.
#[derive(Default, Clone)]
pub struct RecvStream {
    bits: Vec<u64>,
    max_seen: Option<u64>,
    pub unique: u64,
    pub dup: u64,
    pub ooo: u64,
}

impl RecvStream {
    /// Records `seq`. The caller checks it is below the number published on the stream, which
    /// bounds the bitset.
    pub fn record(&mut self, seq: u64) -> Seen {
        let w = (seq / 64) as usize;
        if w >= self.bits.len() {
            let n = (w + 1).max(self.bits.len() * 2).max(16);
            self.bits.resize(n, 0);
        }
        let b = 1u64 << (seq % 64);
        if self.bits[w] & b != 0 {
            self.dup += 1;
            return Seen::Duplicate;
        }
        self.bits[w] |= b;
        self.unique += 1;
        match self.max_seen {
            Some(m) if seq < m => {
                self.ooo += 1;
                Seen::OutOfOrder
            }
            _ => {
                self.max_seen = Some(seq);
                Seen::InOrder
            }
        }
    }

    /// One past the highest sequence number seen: how far the stream has come, lost
    /// messages included.
    pub fn reached(&self) -> u64 {
        self.max_seen.map_or(0, |m| m + 1)
    }

    /// Messages published on the stream that never arrived.
    pub fn lost(&self, published: u64) -> u64 {
        published.saturating_sub(self.unique)
    }
}
