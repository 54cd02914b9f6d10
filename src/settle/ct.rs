//! Constant-time comparison of secrets-derived values (the `subtle` crate does the work).

use subtle::ConstantTimeEq;

/// `expected == given`, in a time that depends neither on where they differ nor on the
/// length of `expected` (up to `N` bytes): both are compared as `N`-byte buffers, and their
/// lengths in constant time too. Only the length of `given`, which the caller chose, can
/// end the comparison early (when it is over `N`).
pub(crate) fn eq_padded<const N: usize>(expected: &[u8], given: &[u8]) -> bool {
    if given.len() > N || expected.len() > N {
        return false;
    }
    let (mut a, mut b) = ([0u8; N], [0u8; N]);
    a[..expected.len()].copy_from_slice(expected);
    b[..given.len()].copy_from_slice(given);
    let same_len = (expected.len() as u64).ct_eq(&(given.len() as u64));
    bool::from(a.ct_eq(&b) & same_len)
}

/// Two digests are equal, in constant time.
pub(crate) fn eq_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        assert!(eq_padded::<8>(b"abc", b"abc"));
        assert!(eq_padded::<8>(b"", b""));
        assert!(!eq_padded::<8>(b"abc", b"abd"));
        assert!(
            !eq_padded::<8>(b"abc", b"abc\0"),
            "zero padding is not equality"
        );
        assert!(!eq_padded::<8>(b"abc\0", b"abc"));
        assert!(!eq_padded::<8>(b"abc", b"ab"));
        assert!(!eq_padded::<4>(b"abc", b"abcdefgh"));
        assert!(eq_digest(&[7; 32], &[7; 32]));
        assert!(!eq_digest(&[7; 32], &[8; 32]));
    }
}
