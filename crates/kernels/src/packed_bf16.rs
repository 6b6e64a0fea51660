//! bf16 weight matrices stored losslessly in 12 bits per value, for memory-bound decoding.
//!
//! A decode step reads every weight once, so its time is the time to stream the weights from
//! memory (qwen3-0.6b in bf16: 1.19 GB per token). A bf16 value is a sign, an 8-bit exponent and
//! a 7-bit mantissa; the sign and mantissa are close to random, but the exponents of a weight
//! matrix crowd into a few binades (trained and normally initialised weights alike: DFloat11,
//! Zhang et al. 2025, measures ~2.6 bits of exponent entropy). Here each block of
//! [`BLOCK`] consecutive values of a row keeps one base exponent, and each value keeps its
//! sign and mantissa in a byte and its exponent as a 4-bit offset from the base: 12 bits instead
//! of 16, every bit of every value recoverable. A block whose exponents span more than 16
//! binades (a zero, a subnormal, an infinity or an outlier beside tiny values) is kept whole in
//! a side table instead; for normally distributed weights that is ~0.3 % of blocks.
//!
//! This is storage, not quantization: [`PackedBf16::unpack_row`] gives back the exact bits, and
//! the products read the same bf16 values the unpacked matrix holds.
//!
//! Layout, for a matrix of `rows × cols` (`cols` a multiple of [`BLOCK`]), block `b` of the
//! flattened matrix covering values `64·b .. 64·b + 64`:
//! - `sign_mantissa[i]` = `mantissa << 1 | sign` of value `i` (so that a shift left by 15 and a
//!   shift right by 1 of the 16-bit lane put sign and mantissa where bf16 has them);
//! - `exponent_codes[32·b + 16·g + j]` = `code(64·b + 32·g + j) | code(64·b + 32·g + j + 16) << 4`
//!   for half-block `g` in 0..2 and `j` in 0..16: one 16-byte load widened to 16-bit lanes holds
//!   the codes of 32 values, the low nibbles for the first 16 and the high ones for the next;
//! - `bases[b]` = the exponent that code 0 stands for, or [`ESCAPED`] when the block is in the
//!   side table (`escaped_blocks`, sorted, with its 64 values in `escaped_values`).

/// Values per block (one base exponent each).
pub const BLOCK: usize = 64;

/// The base of a block stored whole in the side table. No packed block has it: a block whose
/// smallest exponent is 255 (all infinities or NaNs) is stored whole as well.
pub const ESCAPED: u8 = 255;

/// A `rows × cols` bf16 matrix (row-major), packed as described in the module documentation.
#[derive(Clone, PartialEq, Eq)]
pub struct PackedBf16 {
    rows: usize,
    cols: usize,
    sign_mantissa: Vec<u8>,
    exponent_codes: Vec<u8>,
    bases: Vec<u8>,
    escaped_blocks: Vec<usize>,
    escaped_values: Vec<u16>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedBf16")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("escaped_blocks", &self.escaped_blocks.len())
            .finish()
    }
}

/// One packed block's parts, as the kernels read them.
pub enum Block<'a> {
    /// 64 sign/mantissa bytes, 32 bytes of exponent codes and the base exponent.
    Packed {
        sign_mantissa: &'a [u8],
        exponent_codes: &'a [u8],
        base: u8,
    },
    /// The 64 values as bf16 bits.
    Whole(&'a [u16]),
}

impl PackedBf16 {
    /// Packs `bits` (bf16 values as their bits, `rows × cols` row-major), or `None` when `cols`
    /// is not a multiple of [`BLOCK`] (the matrix then stays as it is).
    pub fn pack(bits: &[u16], rows: usize, cols: usize) -> Option<Self> {
        let mut packed = Self::for_shape(rows, cols)?;
        assert_eq!(bits.len(), rows * cols, "bits hold rows × cols values");
        let escaped = pack_blocks(
            bits,
            &mut packed.sign_mantissa,
            &mut packed.exponent_codes,
            &mut packed.bases,
        );
        packed.set_escaped(bits, escaped);
        Some(packed)
    }

    /// An unfilled matrix of `rows × cols`, or `None` when `cols` is not a whole number of
    /// blocks.
    pub(crate) fn for_shape(rows: usize, cols: usize) -> Option<Self> {
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return None;
        }
        let values = rows * cols;
        Some(Self {
            rows,
            cols,
            sign_mantissa: vec![0; values],
            exponent_codes: vec![0; values / 2],
            bases: vec![0; values / BLOCK],
            escaped_blocks: Vec::new(),
            escaped_values: Vec::new(),
        })
    }

    /// The arrays a packing pass fills: sign/mantissa bytes, exponent codes, bases.
    pub(crate) fn parts_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        (
            &mut self.sign_mantissa,
            &mut self.exponent_codes,
            &mut self.bases,
        )
    }

    /// Records the blocks `escaped` (sorted) as kept whole, with their values from `bits`.
    pub(crate) fn set_escaped(&mut self, bits: &[u16], escaped: Vec<usize>) {
        self.escaped_values = escaped
            .iter()
            .flat_map(|&b| bits[b * BLOCK..][..BLOCK].iter().copied())
            .collect();
        self.escaped_blocks = escaped;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (what a product streams from memory, plus the side table).
    pub fn stored_bytes(&self) -> usize {
        self.sign_mantissa.len()
            + self.exponent_codes.len()
            + self.bases.len()
            + self.escaped_values.len() * 2
            + self.escaped_blocks.len() * std::mem::size_of::<usize>()
    }

    /// How many blocks are kept whole, and how many there are.
    pub fn escaped_share(&self) -> (usize, usize) {
        (self.escaped_blocks.len(), self.bases.len())
    }

    /// Block `b` of the flattened matrix (row `r` has blocks `r·cols/64 ..`).
    #[inline]
    pub fn block(&self, b: usize) -> Block<'_> {
        let base = self.bases[b];
        if base == ESCAPED {
            let at = self
                .escaped_blocks
                .binary_search(&b)
                .expect("an escaped block is in the side table");
            return Block::Whole(&self.escaped_values[at * BLOCK..][..BLOCK]);
        }
        Block::Packed {
            sign_mantissa: &self.sign_mantissa[b * BLOCK..][..BLOCK],
            exponent_codes: &self.exponent_codes[b * BLOCK / 2..][..BLOCK / 2],
            base,
        }
    }

    /// The base exponents of every block (a kernel reads them in order and takes a block from
    /// the side table only where it finds [`ESCAPED`]).
    pub fn bases(&self) -> &[u8] {
        &self.bases
    }

    /// Where the whole blocks from block `b` on start in the side table: a kernel reading
    /// blocks in order takes the escaped ones from there in turn ([`PackedBf16::escaped`]).
    pub fn first_escaped_from(&self, b: usize) -> usize {
        self.escaped_blocks.partition_point(|&e| e < b)
    }

    /// The `i`-th whole block of the side table: its block index and its 64 values.
    #[inline]
    pub fn escaped(&self, i: usize) -> (usize, &[u16]) {
        (
            self.escaped_blocks[i],
            &self.escaped_values[i * BLOCK..][..BLOCK],
        )
    }

    pub fn sign_mantissa(&self) -> &[u8] {
        &self.sign_mantissa
    }

    pub fn exponent_codes(&self) -> &[u8] {
        &self.exponent_codes
    }

    /// Row `r`'s values as bf16 bits, written into `out` (`cols` long).
    pub fn unpack_row(&self, r: usize, out: &mut [u16]) {
        assert_eq!(out.len(), self.cols, "a row has cols values");
        let first = r * self.cols / BLOCK;
        for (i, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            unpack_block(self.block(first + i), out);
        }
    }

    /// The whole matrix as bf16 bits, row-major.
    pub fn unpack(&self) -> Vec<u16> {
        let mut out = vec![0u16; self.rows * self.cols];
        if self.cols > 0 {
            for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
                self.unpack_row(r, row);
            }
        }
        out
    }
}

/// Packs the blocks of `bits` into the three arrays (each sized for them) and returns the
/// indices of the blocks that must be kept whole (their base set to [`ESCAPED`]).
///
/// Plain loops over fixed-size blocks, which the compiler vectorises: packing qwen3-0.6b's
/// 596 M values is a fraction of loading it.
pub(crate) fn pack_blocks(
    bits: &[u16],
    sign_mantissa: &mut [u8],
    exponent_codes: &mut [u8],
    bases: &mut [u8],
) -> Vec<usize> {
    let mut escaped = Vec::new();
    let blocks = bits
        .chunks_exact(BLOCK)
        .zip(sign_mantissa.chunks_exact_mut(BLOCK))
        .zip(exponent_codes.chunks_exact_mut(BLOCK / 2))
        .zip(bases.iter_mut());
    for (b, (((values, sm), codes), base)) in blocks.enumerate() {
        // The exponent is bits 7..15: the low byte of `v >> 7` (the sign falls off).
        let (mut lowest, mut highest) = (u8::MAX, 0u8);
        for &v in values {
            let e = (v >> 7) as u8;
            lowest = lowest.min(e);
            highest = highest.max(e);
        }
        for (out, &v) in sm.iter_mut().zip(values) {
            // `v << 1` as a byte is the mantissa shifted up (bit 7 of v falls off).
            *out = (v << 1) as u8 | (v >> 15) as u8;
        }
        if highest - lowest > 15 || lowest == ESCAPED {
            *base = ESCAPED;
            escaped.push(b);
            continue;
        }
        *base = lowest;
        for g in 0..2 {
            for j in 0..16 {
                let first = (values[32 * g + j] >> 7) as u8 - lowest;
                let second = (values[32 * g + j + 16] >> 7) as u8 - lowest;
                codes[16 * g + j] = first | second << 4;
            }
        }
    }
    escaped
}

/// One block's 64 values as bf16 bits.
#[inline]
pub fn unpack_block(block: Block<'_>, out: &mut [u16]) {
    match block {
        Block::Whole(values) => out.copy_from_slice(values),
        Block::Packed {
            sign_mantissa,
            exponent_codes,
            base,
        } => {
            for (i, out) in out.iter_mut().enumerate() {
                let (g, j) = (i / 32, i % 32);
                let byte = exponent_codes[16 * g + j % 16];
                let code = if j < 16 { byte & 0x0F } else { byte >> 4 };
                let sm = u16::from(sign_mantissa[i]);
                *out = (sm & 1) << 15 | u16::from(base + code) << 7 | sm >> 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::bf16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn normal_bits(rng: &mut StdRng, n: usize, std: f32) -> Vec<u16> {
        (0..n)
            .map(|_| {
                let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
                let u2: f32 = rng.random();
                let g = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos() * std;
                bf16::from_f32(g).to_bits()
            })
            .collect()
    }

    #[test]
    fn normal_weights_round_trip_and_take_three_quarters_of_the_space() {
        let mut rng = StdRng::seed_from_u64(3);
        let (rows, cols) = (96, 256);
        let bits = normal_bits(&mut rng, rows * cols, 0.02);
        let packed = PackedBf16::pack(&bits, rows, cols).expect("cols is a multiple of 64");
        assert_eq!(packed.unpack(), bits);
        let (escaped, blocks) = packed.escaped_share();
        assert!(
            escaped * 50 < blocks,
            "{escaped} of {blocks} blocks escaped"
        );
        let ratio = packed.stored_bytes() as f64 / (bits.len() * 2) as f64;
        assert!(ratio < 0.78, "packed to {ratio:.3} of the bf16 size");
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let mut rng = StdRng::seed_from_u64(5);
        let special = [
            0x0000, 0x8000, // ±0
            0x0001, 0x807F, // subnormals
            0x7F80, 0xFF80, // ±inf
            0x7FC0, 0x7F81, 0xFFFF, // NaNs
            0x7F7F, 0x0080, // largest and smallest normal
        ];
        // Blocks of: random bits (any exponent), normal weights with one special value at a
        // random place, and all-special blocks (all NaN has exponent 255: never packed).
        let cols = 128;
        let mut bits = Vec::new();
        for _ in 0..4 {
            bits.extend((0..cols).map(|_| rng.random::<u16>()));
        }
        for &s in &special {
            let mut row = normal_bits(&mut rng, cols, 1.0);
            row[rng.random_range(0..cols)] = s;
            bits.extend(row);
            bits.extend(std::iter::repeat_n(s, cols));
        }
        let rows = bits.len() / cols;
        let packed = PackedBf16::pack(&bits, rows, cols).unwrap();
        assert_eq!(packed.unpack(), bits);
        // Each row alone as well (the kernels unpack rows).
        let mut row = vec![0u16; cols];
        for r in 0..rows {
            packed.unpack_row(r, &mut row);
            assert_eq!(row, bits[r * cols..][..cols], "row {r}");
        }
    }

    #[test]
    fn a_block_spanning_sixteen_binades_is_packed_and_seventeen_is_not() {
        let cols = 64;
        let with_span = |span: u16| {
            let mut bits = vec![0x3F80u16; cols]; // 1.0: exponent 127
            bits[10] = (127 - span) << 7 | 0x55; // a smaller value, `span` binades lower
            bits
        };
        let fits = PackedBf16::pack(&with_span(15), 1, cols).unwrap();
        assert_eq!(fits.escaped_share(), (0, 1));
        assert_eq!(fits.unpack(), with_span(15));
        let whole = PackedBf16::pack(&with_span(16), 1, cols).unwrap();
        assert_eq!(whole.escaped_share(), (1, 1));
        assert_eq!(whole.unpack(), with_span(16));
    }

    #[test]
    fn widths_that_are_not_whole_blocks_are_left_unpacked() {
        assert!(PackedBf16::pack(&[0; 100], 1, 100).is_none());
        assert!(PackedBf16::pack(&[], 0, 0).is_none());
    }
}
