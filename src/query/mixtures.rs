//! Texts made of pieces picked at random (with a fixed seed), each piece
//! upper-cased, lower-cased or as it is: for the tests that hold a fast
//! pre-test to what the rules behind it find.

/// `count` texts of 1 to `most` pieces each.
pub fn mixtures(pieces: &[String], seed: u64, most: usize, count: usize) -> Vec<String> {
    let mut seed = seed | 1;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    (0..count)
        .map(|_| {
            let mut text = String::new();
            for _ in 0..1 + next(most) {
                let piece = &pieces[next(pieces.len())];
                match next(3) {
                    0 => text.push_str(&piece.to_uppercase()),
                    1 => text.push_str(&piece.to_lowercase()),
                    _ => text.push_str(piece),
                }
            }
            text
        })
        .collect()
}
