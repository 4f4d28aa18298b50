//! Argon2 hashes made by the common libraries with their default parameters
//! (argon2-cffi's `PasswordHasher().hash()`, node-argon2's `hash()`: RFC 9106's
//! second recommended option, m=65536, t=3, p=4), as a platform migrating the
//! secrets of its Python or Node servers holds them, verify under the default
//! policy. The vectors, and the script that made them with the library
//! versions it names, are in `tests/data/`.

use proptest::prelude::*;
use structure_access::{HashPolicy, Secret, Verifier, VerifierError};

const VECTORS: &str = include_str!("data/argon2_vectors.txt");

/// (library, secret, PHC string) for each line of the vectors.
fn vectors() -> Vec<(&'static str, &'static str, &'static str)> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let mut fields = line.split('\t');
            let v = (
                fields.next().unwrap(),
                fields.next().unwrap(),
                fields.next().unwrap(),
            );
            assert!(fields.next().is_none(), "{line}");
            v
        })
        .collect()
}

#[test]
fn default_hashes_of_argon2_cffi_and_node_argon2_verify_under_the_default_policy() {
    let vectors = vectors();
    for library in ["argon2-cffi 25.1.0", "node-argon2 0.45.1"] {
        assert_eq!(
            vectors.iter().filter(|v| v.0.starts_with(library)).count(),
            2,
            "{library}"
        );
    }
    let policy = HashPolicy::default();
    for (library, secret, phc) in vectors {
        let verifier: Verifier = phc.parse().unwrap_or_else(|e| panic!("{library}: {e}"));
        // Stored as written: node-argon2 orders the parameters `m,p,t`.
        assert_eq!(verifier.as_str(), phc);
        let cost = verifier.cost().unwrap();
        assert_eq!((cost.m, cost.t, cost.p), (65536, 3, 4), "{library}");
        let secret = Secret::imported(secret).unwrap();
        assert_eq!(verifier.verify(&secret, &policy), Ok(()), "{library}");
        let wrong =
            Secret::imported("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a09")
                .unwrap();
        assert_eq!(
            verifier.verify(&wrong, &policy),
            Err(VerifierError::Mismatch),
            "{library}"
        );
    }
}

#[test]
fn a_4_gib_hash_is_still_refused_before_hashing() {
    let (_, secret, phc) = vectors()[0];
    let hostile: Verifier = phc.replace("m=65536", "m=4194304").parse().unwrap();
    let secret = Secret::imported(secret).unwrap();
    // Refused by the bounds: no 4 GiB is reserved (that would fail or take
    // seconds here; tests/alloc_auth.rs counts the bytes).
    assert_eq!(
        hostile.verify(&secret, &HashPolicy::default()),
        Err(VerifierError::OutOfBounds {
            name: "m",
            value: 4194304,
            min: 8,
            max: 65536
        })
    );
}

proptest! {
    /// `m`, `t` and `p` in any of their six orders read as the same cost, and
    /// the string is kept as written; a parameter twice, or missing, is refused.
    #[test]
    fn argon2_parameters_read_in_any_order(
        m in 8u32..10_000_000, t in 1u32..100_000, p in 1u32..256, order in 0usize..6,
    ) {
        let params = [format!("m={m}"), format!("t={t}"), format!("p={p}")];
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let [a, b, c] = orders[order];
        let text = format!(
            "$argon2id$v=19${},{},{}$o1a2OxEBgc6kveVG22cS6A$K7zmi4nG5Ux59QQJFhoI8CoXXlFI9Dj7hPiP8geQZBA",
            params[a], params[b], params[c]
        );
        let verifier: Verifier = text.parse().unwrap();
        let cost = verifier.cost().unwrap();
        prop_assert_eq!((cost.m, cost.t, cost.p), (m, t, p));
        prop_assert_eq!(verifier.as_str(), text.as_str());
        let twice = format!("{},{},{}", params[a], params[b], params[a]);
        let twice = text.replacen(&format!("{},{},{}", params[a], params[b], params[c]), &twice, 1);
        prop_assert!(twice.parse::<Verifier>().is_err());
        let missing = text.replacen(&format!(",{}", params[c]), "", 1);
        prop_assert!(missing.parse::<Verifier>().is_err());
    }
}
