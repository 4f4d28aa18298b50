//! Verifiers: the fast HMAC-SHA-256 scheme for generated secrets, Argon2id for
//! imported ones, PHC strings, the hashing policy and its bounds.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64ct::{Base64Unpadded, Encoding};
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::secret::Secret;

/// Salt length of new verifiers, in bytes.
pub const SALT_LEN: usize = 16;
/// Output length of new verifiers, in bytes.
pub const OUTPUT_LEN: usize = 32;
/// Shortest salt accepted in a stored verifier, in bytes (Argon2's minimum).
pub const MIN_SALT_LEN: usize = 8;
/// Longest salt accepted in a stored verifier, in bytes.
pub const MAX_SALT_LEN: usize = 64;
/// Shortest output accepted in a stored verifier, in bytes.
pub const MIN_OUTPUT_LEN: usize = 16;
/// Longest output accepted in a stored verifier, in bytes.
pub const MAX_OUTPUT_LEN: usize = 64;
/// Longest PHC string accepted, in bytes (ample for the bounds above).
pub const MAX_PHC_LEN: usize = 256;
/// The identifier of the fast scheme in PHC strings: `$hmac-sha256$v=1$<salt>$<mac>`.
pub const FAST_SCHEME_ID: &str = "hmac-sha256";
/// Output length of the fast scheme (HMAC-SHA-256), in bytes.
pub const FAST_OUTPUT_LEN: usize = 32;

/// How a verifier proves a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// HMAC-SHA-256 keyed by the salt, over the secret's exact bytes:
    /// `$hmac-sha256$v=1$<salt>$<mac>`. About a microsecond: for generated
    /// secrets, whose 256 random bits leave nothing to guess offline.
    HmacSha256,
    /// Argon2, memory-hard and deliberately slow: for imported secrets, which
    /// may be human-chosen.
    Argon2(Variant),
}

impl Scheme {
    /// Whether verifying costs a hash designed to be slow (Argon2).
    #[must_use]
    pub const fn is_slow(self) -> bool {
        matches!(self, Self::Argon2(_))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HmacSha256 => f.write_str(FAST_SCHEME_ID),
            Self::Argon2(variant) => variant.fmt(f),
        }
    }
}

/// Argon2 variants, named as in PHC strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Variant {
    /// `argon2d`: data-dependent memory access (side-channel exposed).
    Argon2d,
    /// `argon2i`: data-independent memory access.
    Argon2i,
    /// `argon2id`: the hybrid recommended by RFC 9106 and OWASP.
    Argon2id,
}

impl Variant {
    /// The PHC identifier.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Argon2d => "argon2d",
            Self::Argon2i => "argon2i",
            Self::Argon2id => "argon2id",
        }
    }

    const fn algorithm(self) -> Algorithm {
        match self {
            Self::Argon2d => Algorithm::Argon2d,
            Self::Argon2i => Algorithm::Argon2i,
            Self::Argon2id => Algorithm::Argon2id,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a verifier could not be read, created or used.
///
/// The messages never contain a secret; they quote the PHC string's public
/// parts (variant and parameters) only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// The text is not a PHC string of the accepted shape.
    #[error("malformed verifier at byte {offset}: expected {expected}")]
    Malformed {
        /// Byte offset where reading stopped.
        offset: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// The PHC string is longer than [`MAX_PHC_LEN`].
    #[error("verifier is {len} bytes long, expected at most {MAX_PHC_LEN}")]
    TooLong {
        /// Length of the rejected text in bytes.
        len: usize,
    },
    /// The algorithm is not one of `hmac-sha256`, `argon2id`, `argon2i`, `argon2d`.
    #[error(
        "unsupported verifier algorithm `{}`, expected `hmac-sha256` or `argon2id`",
        crate::text::Escaped(found)
    )]
    UnknownAlgorithm {
        /// The identifier found (at most 32 characters of it).
        found: Box<str>,
    },
    /// The version is not the scheme's (19 for Argon2, 1 for `hmac-sha256`).
    #[error("unsupported {scheme} version `{found}`, expected `{expected}`")]
    UnsupportedVersion {
        /// The scheme.
        scheme: &'static str,
        /// The version found.
        found: u32,
        /// The version accepted.
        expected: u32,
    },
    /// A known variant that the policy does not allow.
    #[error("verifier algorithm `{found}` is not allowed by the hash policy, expected `argon2id`")]
    AlgorithmNotAllowed {
        /// The variant found.
        found: Variant,
    },
    /// A parameter outside the policy's bounds: refused before any hashing.
    #[error(
        "verifier parameter `{name}={value}` is outside the hash policy, expected {min} to {max}"
    )]
    OutOfBounds {
        /// `m`, `t` or `p`.
        name: &'static str,
        /// The value found.
        value: u32,
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// Argon2 parameters whose total work (`m × t`, in KiB passes) exceeds the
    /// policy's bound: refused before any hashing.
    #[error(
        "verifier parameters `m={m},t={t}` cost {} KiB passes, expected at most {max_work}",
        u64::from(*.m) * u64::from(*.t)
    )]
    TooCostly {
        /// Memory cost in KiB.
        m: u32,
        /// Time cost.
        t: u32,
        /// The bound on `m × t`.
        max_work: u64,
    },
    /// A stored Argon2 verifier weaker than the policy's optional minimums.
    #[error("verifier parameter `{name}={value}` is below the hash policy's minimum {min}")]
    BelowMinimum {
        /// `m`, `t` or `p`.
        name: &'static str,
        /// The value found.
        value: u32,
        /// Smallest accepted value.
        min: u32,
    },
    /// A fast (`hmac-sha256`) verifier asked to prove an imported secret, which
    /// may be human-chosen: refused unless the policy allows it.
    #[error(
        "a fast `hmac-sha256` verifier cannot prove an imported secret unless the hash policy allows it, expected an argon2id verifier"
    )]
    FastForImported,
    /// The secret does not match the verifier.
    #[error("the secret does not match the verifier")]
    Mismatch,
    /// Salt or output of a length outside the accepted range.
    #[error("verifier {what} is {len} bytes long, expected {min} to {max}")]
    Length {
        /// `salt` or `output`.
        what: &'static str,
        /// Decoded length (or a lower bound of it when too long to decode).
        len: usize,
        /// Smallest accepted length.
        min: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// Parameters that Argon2 itself rejects.
    #[error("invalid argon2 parameters m={m}, t={t}, p={p}: {reason}")]
    InvalidParams {
        /// Memory cost in KiB.
        m: u32,
        /// Time cost.
        t: u32,
        /// Parallelism.
        p: u32,
        /// What Argon2 said.
        reason: &'static str,
    },
    /// Memory for the computation could not be reserved.
    #[error("could not allocate {kib} KiB for argon2")]
    OutOfMemory {
        /// Requested memory in KiB.
        kib: u32,
    },
}

/// Argon2 cost parameters: memory in KiB, iterations, lanes.
///
/// Build one with [`Cost::new`]; the fields are public to read, and more may
/// come (a struct literal outside this crate does not compile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Cost {
    /// Memory cost `m`, in KiB.
    pub m: u32,
    /// Time cost `t` (iterations).
    pub t: u32,
    /// Parallelism `p` (lanes).
    pub p: u32,
}

/// Which verifiers new secrets get, and which stored verifiers are accepted.
///
/// **New verifiers** depend on the kind of secret:
///
/// - a generated secret (`sts_…`, 256 random bits) gets the fast
///   [`Scheme::HmacSha256`] verifier: no offline guessing is possible whatever
///   the hash, so a slow hash would protect nothing and only hand attackers an
///   amplifier against servers ([`HashPolicy::argon2id_for_generated`] asks
///   for Argon2id all the same);
/// - an imported secret (it may be human-chosen) gets Argon2id with m=19456 KiB,
///   t=2, p=1 (OWASP) by default.
///
/// **Stored verifiers** are checked before any hashing:
///
/// - Argon2 parameters within bounds, by default m ≤ 65536 KiB (64 MiB), t ≤ 16,
///   p ≤ 8 and m × t ≤ 262144 KiB passes (64 MiB × 4): the defaults of
///   argon2-cffi and node-argon2 (RFC 9106's second recommended option,
///   m=65536, t=3, p=4) are accepted, so secrets hashed by a platform's Python
///   or Node servers import as they are, while a corrupted or hostile
///   `m=4194304`, `t=4000000` or `p=255` is refused before anything is
///   allocated or hashed; optional minimums ([`HashPolicy::with_minimum`])
///   refuse weaker ones outright;
/// - Argon2id only, unless `argon2i` or `argon2d` is allowed;
/// - a fast verifier proves only generated secrets, unless
///   [`HashPolicy::allow_fast_for_imported`] says the imported secrets are
///   machine-made (such as the platform's 64-hex secrets).
///
/// ```
/// use structure_access::{HashPolicy, Scheme, Secret, Variant};
///
/// let policy = HashPolicy::default();
/// assert_eq!(policy.params().m, 19456);
/// let generated: Secret = "sts_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2ytyDA".parse()?;
/// assert_eq!(policy.scheme_for(&generated), Scheme::HmacSha256);
/// let imported = Secret::imported("correct-horse-battery-staple")?;
/// assert_eq!(policy.scheme_for(&imported), Scheme::Argon2(Variant::Argon2id));
/// // Cheap Argon2 parameters, for tests only.
/// let cheap = HashPolicy::default().with_params(structure_access::Cost::new(64, 1, 1))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HashPolicy {
    params: Cost,
    max: Cost,
    max_work: u64,
    min: Option<Cost>,
    argon2id_for_generated: bool,
    fast_for_imported: bool,
    allow_argon2i: bool,
    allow_argon2d: bool,
}

/// Argon2 parameters of new verifiers by default (OWASP).
const DEFAULT_PARAMS: Cost = Cost {
    m: 19456,
    t: 2,
    p: 1,
};

/// The largest parameters of stored verifiers by default: 64 MiB, as RFC 9106's
/// second recommended option (m=65536, t=3, p=4: argon2-cffi's and
/// node-argon2's defaults), a few passes, a few lanes.
const DEFAULT_BOUNDS: Cost = Cost {
    m: 65536,
    t: 16,
    p: 8,
};

/// The largest `m × t` of stored verifiers by default: 64 MiB × 4 passes.
const DEFAULT_MAX_WORK: u64 = 65536 * 4;

/// `m × t`, the work of an Argon2 computation in KiB passes.
fn work(cost: Cost) -> u64 {
    u64::from(cost.m) * u64::from(cost.t)
}

impl Default for HashPolicy {
    fn default() -> Self {
        Self {
            params: DEFAULT_PARAMS,
            max: DEFAULT_BOUNDS,
            max_work: DEFAULT_MAX_WORK,
            min: None,
            argon2id_for_generated: false,
            fast_for_imported: false,
            allow_argon2i: false,
            allow_argon2d: false,
        }
    }
}

fn argon2_params(cost: Cost, output_len: usize) -> Result<Params, VerifierError> {
    Params::new(cost.m, cost.t, cost.p, Some(output_len)).map_err(|e| {
        VerifierError::InvalidParams {
            m: cost.m,
            t: cost.t,
            p: cost.p,
            reason: argon2_reason(e),
        }
    })
}

fn argon2_reason(e: argon2::Error) -> &'static str {
    match e {
        argon2::Error::MemoryTooLittle => "memory cost below 8 KiB per lane",
        argon2::Error::MemoryTooMuch => "memory cost too large",
        argon2::Error::TimeTooSmall => "time cost below 1",
        argon2::Error::ThreadsTooFew => "parallelism below 1",
        argon2::Error::ThreadsTooMany => "parallelism too large",
        argon2::Error::OutputTooShort => "output too short",
        argon2::Error::OutputTooLong => "output too long",
        argon2::Error::SaltTooShort => "salt too short",
        argon2::Error::SaltTooLong => "salt too long",
        argon2::Error::PwdTooLong => "secret too long",
        _ => "rejected by argon2",
    }
}

impl HashPolicy {
    /// Sets the Argon2 parameters of new verifiers (`m` in KiB). They must lie
    /// within the policy's bounds and be valid Argon2 parameters.
    pub fn with_params(mut self, params: Cost) -> Result<Self, VerifierError> {
        self.params = params;
        self.check_cost(self.params)?;
        argon2_params(self.params, OUTPUT_LEN)?;
        Ok(self)
    }

    /// Sets the largest Argon2 parameters accepted in stored verifiers (the
    /// bound on `m × t` becomes `max.m × max.t`). The parameters of new
    /// verifiers must stay within them.
    pub fn with_bounds(mut self, max: Cost) -> Result<Self, VerifierError> {
        self.max = max;
        self.max_work = work(self.max);
        self.check_cost(self.params)?;
        Ok(self)
    }

    /// Refuses stored Argon2 verifiers weaker than these parameters outright
    /// (none by default). The parameters of new verifiers must meet them.
    pub fn with_minimum(mut self, min: Cost) -> Result<Self, VerifierError> {
        self.min = Some(min);
        self.check_cost(self.params)?;
        Ok(self)
    }

    /// Gives new generated secrets Argon2id verifiers instead of the fast
    /// scheme (off by default: it costs every verification tens of
    /// milliseconds and protects nothing a 256-bit secret needs).
    #[must_use]
    pub fn argon2id_for_generated(mut self, yes: bool) -> Self {
        self.argon2id_for_generated = yes;
        self
    }

    /// Lets fast (`hmac-sha256`) verifiers prove imported secrets too (off by
    /// default). Only for imported secrets known to be machine-made with ample
    /// randomness, such as the platform's 64-hex-character secrets: a
    /// human-chosen secret behind a fast verifier can be guessed offline.
    #[must_use]
    pub fn allow_fast_for_imported(mut self, allow: bool) -> Self {
        self.fast_for_imported = allow;
        self
    }

    /// Also accepts stored `argon2i` verifiers (off by default).
    #[must_use]
    pub fn allow_argon2i(mut self, allow: bool) -> Self {
        self.allow_argon2i = allow;
        self
    }

    /// Also accepts stored `argon2d` verifiers (off by default; Argon2d's
    /// data-dependent memory access leaks timing information).
    #[must_use]
    pub fn allow_argon2d(mut self, allow: bool) -> Self {
        self.allow_argon2d = allow;
        self
    }

    /// The Argon2 parameters of new verifiers.
    pub fn params(&self) -> Cost {
        self.params
    }

    /// The largest Argon2 parameters accepted in stored verifiers.
    pub fn bounds(&self) -> Cost {
        self.max
    }

    /// The largest `m × t` accepted in stored verifiers.
    pub fn max_work(&self) -> u64 {
        self.max_work
    }

    /// The optional minimum Argon2 parameters of stored verifiers.
    pub fn minimum(&self) -> Option<Cost> {
        self.min
    }

    /// The scheme of new verifiers for `secret`'s kind.
    pub fn scheme_for(&self, secret: &Secret) -> Scheme {
        if secret.is_generated() && !self.argon2id_for_generated {
            Scheme::HmacSha256
        } else {
            Scheme::Argon2(Variant::Argon2id)
        }
    }

    /// The scheme every authentication of `key` costs, whether or not a record
    /// exists and whatever secret is presented: the cost rule of the
    /// [`Authenticator`](crate::Authenticator), from what a caller without the
    /// secret also knows (the key id's shape and the policy). A generated key
    /// (`stk_…`) costs the scheme of generated secrets (the fast one, or
    /// Argon2id with [`argon2id_for_generated`](Self::argon2id_for_generated));
    /// an imported key costs Argon2id, or the fast scheme with
    /// [`allow_fast_for_imported`](Self::allow_fast_for_imported), whose records
    /// hold fast verifiers of machine-made secrets.
    ///
    /// ```
    /// use structure_access::{HashPolicy, KeyId, Scheme, Variant};
    ///
    /// let generated: KeyId = "stk_4DmVJcy3ZpW0gNqk8TbX2a".parse()?;
    /// let uuid: KeyId = "6a1f8a3e-3b0c-4d7e-9f51-2c1b6f3e9a10".parse()?;
    /// let policy = HashPolicy::default();
    /// assert_eq!(policy.expected_scheme(&generated), Scheme::HmacSha256);
    /// assert_eq!(policy.expected_scheme(&uuid), Scheme::Argon2(Variant::Argon2id));
    /// let machine_made = HashPolicy::default().allow_fast_for_imported(true);
    /// assert_eq!(machine_made.expected_scheme(&uuid), Scheme::HmacSha256);
    /// # Ok::<(), structure_access::KeyError>(())
    /// ```
    pub fn expected_scheme(&self, key: &crate::KeyId) -> Scheme {
        let fast = if key.is_generated() {
            !self.argon2id_for_generated
        } else {
            self.fast_for_imported
        };
        if fast {
            Scheme::HmacSha256
        } else {
            Scheme::Argon2(Variant::Argon2id)
        }
    }

    fn check_cost(&self, cost: Cost) -> Result<(), VerifierError> {
        let checks = [
            ("m", cost.m, Params::MIN_M_COST, self.max.m),
            ("t", cost.t, Params::MIN_T_COST, self.max.t),
            ("p", cost.p, Params::MIN_P_COST, self.max.p),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(VerifierError::OutOfBounds {
                    name,
                    value,
                    min,
                    max,
                });
            }
        }
        if work(cost) > self.max_work {
            return Err(VerifierError::TooCostly {
                m: cost.m,
                t: cost.t,
                max_work: self.max_work,
            });
        }
        if let Some(min) = self.min {
            for (name, value, min) in [
                ("m", cost.m, min.m),
                ("t", cost.t, min.t),
                ("p", cost.p, min.p),
            ] {
                if value < min {
                    return Err(VerifierError::BelowMinimum { name, value, min });
                }
            }
        }
        Ok(())
    }

    /// Checks a stored verifier against the policy, without hashing anything:
    /// its algorithm is allowed and its Argon2 parameters are within bounds.
    pub fn check(&self, verifier: &Verifier) -> Result<(), VerifierError> {
        let (variant, cost) = match verifier.kind {
            Kind::HmacSha256 => return Ok(()),
            Kind::Argon2 { variant, cost } => (variant, cost),
        };
        let allowed = match variant {
            Variant::Argon2id => true,
            Variant::Argon2i => self.allow_argon2i,
            Variant::Argon2d => self.allow_argon2d,
        };
        if !allowed {
            return Err(VerifierError::AlgorithmNotAllowed { found: variant });
        }
        self.check_cost(cost)?;
        // Argon2's own rule (m ≥ 8 KiB per lane) is checked here too, so that a
        // verifier accepted by the policy can always be computed.
        argon2_params(cost, usize::from(verifier.output_len))?;
        Ok(())
    }

    /// [`check`](Self::check), and that the verifier may prove `secret`'s kind:
    /// a fast verifier proves an imported secret only if the policy allows it.
    pub fn check_for(&self, verifier: &Verifier, secret: &Secret) -> Result<(), VerifierError> {
        if verifier.kind == Kind::HmacSha256 && !secret.is_generated() && !self.fast_for_imported {
            return Err(VerifierError::FastForImported);
        }
        self.check(verifier)
    }

    /// Whether a stored verifier that just proved `secret` should be replaced:
    /// its scheme is not the one this policy writes for the secret's kind, or
    /// its Argon2 parameters are not the policy's. Below them it is weaker;
    /// above them (argon2-cffi's defaults, say) it costs more than the dummy
    /// verification that hides unknown keys, so its key's existence shows by
    /// timing (see the [`Authenticator`](crate::Authenticator)'s cost rule).
    #[must_use]
    pub fn needs_upgrade(&self, verifier: &Verifier, secret: &Secret) -> bool {
        match (verifier.kind, self.scheme_for(secret)) {
            (Kind::HmacSha256, Scheme::HmacSha256) => false,
            (Kind::Argon2 { variant, cost }, Scheme::Argon2(wanted)) => {
                variant != wanted || cost != self.params
            }
            _ => true,
        }
    }
}

/// A stored verifier: a PHC string of one of two schemes.
///
/// - **`hmac-sha256`**, for generated secrets:
///   `$hmac-sha256$v=1$<salt>$<mac>`, where `<mac>` is HMAC-SHA-256 keyed by the
///   salt (8–64 bytes; 16 in new verifiers) over the secret's exact UTF-8 bytes,
///   32 bytes. Both fields are standard base64 without padding, as in every PHC
///   string. Any language checks it with its standard library; in Python:
///
///   ```python
///   import base64, hashlib, hmac
///   def verify(phc: str, secret: str) -> bool:
///       _, scheme, version, salt, mac = phc.split("$")
///       assert scheme == "hmac-sha256" and version == "v=1"
///       b64 = lambda s: base64.b64decode(s + "=" * (-len(s) % 4))
///       ours = hmac.new(b64(salt), secret.encode(), hashlib.sha256).digest()
///       return hmac.compare_digest(ours, b64(mac))
///   ```
///
/// - **Argon2**, for imported secrets: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
///   Parsing checks the shape (variant, version 19, decimal `m`, `t`, `p`, each
///   once in any order, salt of 8–64 bytes and output of 16–64 bytes, nothing else);
///   the cost is checked against a [`HashPolicy`] before hashing. Strings
///   produced by libargon2 and the libraries built on it (argon2-cffi,
///   node-argon2, PHP's `password_hash`) have this shape.
///
/// Outputs are compared in constant time. The verifier is not secret, but an
/// Argon2 one allows offline guessing of weak secrets: store verifiers like
/// password hashes.
#[derive(Clone)]
pub struct Verifier {
    phc: Box<str>,
    kind: Kind,
    salt_len: u8,
    salt: [u8; MAX_SALT_LEN],
    output_len: u8,
    output: [u8; MAX_OUTPUT_LEN],
}

/// The scheme of a verifier, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HmacSha256,
    Argon2 { variant: Variant, cost: Cost },
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn malformed(&self, expected: &'static str) -> VerifierError {
        VerifierError::Malformed {
            offset: self.pos,
            expected,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn tag(&mut self, tag: &str, expected: &'static str) -> Result<(), VerifierError> {
        if self.rest().starts_with(tag) {
            self.pos += tag.len();
            Ok(())
        } else {
            Err(self.malformed(expected))
        }
    }

    /// Reads up to (not including) `stop` or the end.
    fn until(&mut self, stop: u8) -> &'a str {
        let rest = self.rest();
        let len = rest.bytes().position(|b| b == stop).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or_default()
    }

    fn decimal(&mut self, expected: &'static str) -> Result<u32, VerifierError> {
        let rest = self.rest();
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let digits = rest.get(..len).unwrap_or_default();
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return Err(self.malformed(expected));
        }
        let value = digits.parse().map_err(|_| self.malformed(expected))?;
        self.pos += len;
        Ok(value)
    }

    /// `m=…,t=…,p=…`: each of the three once, in any order (libargon2 and
    /// argon2-cffi write `m,t,p`; node-argon2 writes `m,p,t`), nothing else.
    fn argon2_params(&mut self) -> Result<Cost, VerifierError> {
        let (mut m, mut t, mut p) = (None, None, None);
        for index in 0..3 {
            if index > 0 {
                self.tag(",", "`,` and the next of `m`, `t` and `p`")?;
            }
            let rest = self.rest();
            let (slot, what) = match rest.get(..2) {
                Some("m=") if m.is_none() => (&mut m, "a decimal memory cost"),
                Some("t=") if t.is_none() => (&mut t, "a decimal time cost"),
                Some("p=") if p.is_none() => (&mut p, "a decimal parallelism"),
                _ => return Err(self.malformed("`m=`, `t=` or `p=`, each once")),
            };
            self.pos += 2;
            *slot = Some(self.decimal(what)?);
        }
        match (m, t, p) {
            (Some(m), Some(t), Some(p)) => Ok(Cost { m, t, p }),
            _ => Err(self.malformed("`m=`, `t=` and `p=`")),
        }
    }

    fn base64<'b>(
        &mut self,
        stop: u8,
        what: &'static str,
        buf: &'b mut [u8],
        min: usize,
    ) -> Result<&'b [u8], VerifierError> {
        let start = self.pos;
        let encoded = self.until(stop);
        // Length first: a too long field is reported as such, not as bad base64.
        let len = encoded.len() * 3 / 4;
        if len < min || len > buf.len() {
            return Err(VerifierError::Length {
                what,
                len,
                min,
                max: buf.len(),
            });
        }
        Base64Unpadded::decode(encoded, buf).map_err(|_| VerifierError::Malformed {
            offset: start,
            expected: "unpadded standard base64",
        })
    }
}

impl FromStr for Verifier {
    type Err = VerifierError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_PHC_LEN {
            return Err(VerifierError::TooLong { len: text.len() });
        }
        let mut r = Reader { text, pos: 0 };
        r.tag("$", "`$` followed by the algorithm")?;
        let ident = r.until(b'$');
        let variant = match ident {
            FAST_SCHEME_ID => return read_fast(text, r),
            other => other.parse::<Variant>()?,
        };
        r.tag("$v=", "`$v=19`")?;
        let version = r.decimal("a decimal version")?;
        if version != 19 {
            return Err(VerifierError::UnsupportedVersion {
                scheme: "argon2",
                found: version,
                expected: 19,
            });
        }
        r.tag("$", "`$` and the parameters")?;
        let Cost { m, t, p } = r.argon2_params()?;
        r.tag("$", "`$` and the salt (no other parameters are accepted)")?;
        let mut salt = [0u8; MAX_SALT_LEN];
        let salt_len = r.base64(b'$', "salt", &mut salt, MIN_SALT_LEN)?.len();
        r.tag("$", "`$` and the hash")?;
        let mut output = [0u8; MAX_OUTPUT_LEN];
        let output_len = r.base64(b'$', "output", &mut output, MIN_OUTPUT_LEN)?.len();
        if !r.rest().is_empty() {
            return Err(r.malformed("the end of the verifier"));
        }
        Ok(Self {
            phc: text.into(),
            kind: Kind::Argon2 {
                variant,
                cost: Cost { m, t, p },
            },
            salt_len: u8::try_from(salt_len).unwrap_or(0),
            salt,
            output_len: u8::try_from(output_len).unwrap_or(0),
            output,
        })
    }
}

/// The rest of `$hmac-sha256$v=1$<salt>$<mac>`, after the identifier.
fn read_fast(text: &str, mut r: Reader<'_>) -> Result<Verifier, VerifierError> {
    r.tag("$v=", "`$v=1`")?;
    let version = r.decimal("a decimal version")?;
    if version != 1 {
        return Err(VerifierError::UnsupportedVersion {
            scheme: FAST_SCHEME_ID,
            found: version,
            expected: 1,
        });
    }
    r.tag("$", "`$` and the salt")?;
    if r.rest().split('$').next().unwrap_or_default().contains('=') {
        return Err(r.malformed("the salt (the scheme takes no parameters)"));
    }
    let mut salt = [0u8; MAX_SALT_LEN];
    let salt_len = r.base64(b'$', "salt", &mut salt, MIN_SALT_LEN)?.len();
    r.tag("$", "`$` and the mac")?;
    let mut output = [0u8; MAX_OUTPUT_LEN];
    let buf = output.get_mut(..FAST_OUTPUT_LEN).unwrap_or_default();
    let output_len = r.base64(b'$', "output", buf, FAST_OUTPUT_LEN)?.len();
    if !r.rest().is_empty() {
        return Err(r.malformed("the end of the verifier"));
    }
    Ok(Verifier {
        phc: text.into(),
        kind: Kind::HmacSha256,
        salt_len: u8::try_from(salt_len).unwrap_or(0),
        salt,
        output_len: u8::try_from(output_len).unwrap_or(0),
        output,
    })
}

/// Block memory for Argon2, reusable across verifications.
///
/// Allocating Argon2's memory afresh for every verification makes a process's
/// peak memory grow with each one under glibc, and costs page faults; reusing one
/// buffer keeps memory flat and verification about 20% faster. The buffer is
/// wiped after each use, so no intermediate state of a secret's hash lingers.
#[derive(Default)]
pub struct Argon2Memory {
    blocks: Vec<Block>,
}

impl fmt::Debug for Argon2Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Memory")
            .field("kib", &self.blocks.len())
            .finish()
    }
}

impl Argon2Memory {
    /// An empty buffer; it grows to what the first verification needs.
    pub const fn new() -> Self {
        Self { blocks: Vec::new() }
    }

    /// The buffer's size in KiB.
    pub fn kib(&self) -> usize {
        self.blocks.len()
    }

    fn reserve(&mut self, blocks: usize, kib: u32) -> Result<&mut [Block], VerifierError> {
        if self.blocks.len() < blocks {
            let extra = blocks - self.blocks.len();
            self.blocks
                .try_reserve_exact(extra)
                .map_err(|_| VerifierError::OutOfMemory { kib })?;
            self.blocks.resize(blocks, Block::new());
        }
        Ok(self.blocks.get_mut(..blocks).unwrap_or_default())
    }

    /// Wipes the first `blocks` blocks: those a verification used.
    fn wipe(&mut self, blocks: usize) {
        // A plain fill is a vectorised memset, several times faster than
        // `zeroize`'s volatile writes over megabytes; `black_box` makes the
        // compiler treat the buffer as read afterwards, so the fill is kept.
        let used = blocks.min(self.blocks.len());
        if let Some(used) = self.blocks.get_mut(..used) {
            used.fill(Block::new());
        }
        core::hint::black_box(&mut self.blocks);
    }
}

impl Verifier {
    /// Creates a verifier for `secret`, of the scheme `policy` writes for its
    /// kind ([`HashPolicy::scheme_for`]: the fast scheme for a generated secret,
    /// Argon2id with the policy's parameters for an imported one), with a random
    /// 16-byte salt from `rng`.
    pub fn create<R: rand_core::CryptoRng + ?Sized>(
        secret: &Secret,
        policy: &HashPolicy,
        rng: &mut R,
    ) -> Result<Self, VerifierError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        Self::create_with_salt(secret, policy, &salt, &mut Argon2Memory::new())
    }

    pub(crate) fn create_with_salt(
        secret: &Secret,
        policy: &HashPolicy,
        salt: &[u8; SALT_LEN],
        memory: &mut Argon2Memory,
    ) -> Result<Self, VerifierError> {
        let kind = match policy.scheme_for(secret) {
            Scheme::HmacSha256 => Kind::HmacSha256,
            Scheme::Argon2(variant) => Kind::Argon2 {
                variant,
                cost: policy.params,
            },
        };
        let mut output = [0u8; MAX_OUTPUT_LEN];
        let len = match kind {
            Kind::HmacSha256 => FAST_OUTPUT_LEN,
            Kind::Argon2 { .. } => OUTPUT_LEN,
        };
        let out = output.get_mut(..len).unwrap_or_default();
        compute(kind, secret.as_bytes(), salt, out, memory)?;
        let verifier = Self::from_raw(kind, salt, out);
        output.zeroize();
        Ok(verifier)
    }

    /// An Argon2id verifier with the policy's parameters that no secret
    /// matches in practice, for the dummy verification of unknown keys.
    pub(crate) fn dummy(policy: &HashPolicy) -> Self {
        Self::from_raw(
            Kind::Argon2 {
                variant: Variant::Argon2id,
                cost: policy.params,
            },
            &[0x5a; SALT_LEN],
            &[0; OUTPUT_LEN],
        )
    }

    /// The same, of the fast scheme.
    pub(crate) fn fast_dummy() -> Self {
        Self::from_raw(Kind::HmacSha256, &[0x5a; SALT_LEN], &[0; FAST_OUTPUT_LEN])
    }

    /// A verifier from its parts; `salt` and `output` must be within bounds.
    fn from_raw(kind: Kind, salt: &[u8], output: &[u8]) -> Self {
        let mut salt_b64 = [0u8; 2 * MAX_SALT_LEN];
        let mut out_b64 = [0u8; 2 * MAX_OUTPUT_LEN];
        let salt_text = Base64Unpadded::encode(salt, &mut salt_b64).unwrap_or_default();
        let out_text = Base64Unpadded::encode(output, &mut out_b64).unwrap_or_default();
        let phc = match kind {
            Kind::HmacSha256 => alloc::format!("${FAST_SCHEME_ID}$v=1${salt_text}${out_text}"),
            Kind::Argon2 { variant, cost } => alloc::format!(
                "${variant}$v=19$m={},t={},p={}${salt_text}${out_text}",
                cost.m,
                cost.t,
                cost.p
            ),
        };
        let mut stored_salt = [0u8; MAX_SALT_LEN];
        let salt_len = salt.len().min(MAX_SALT_LEN);
        stored_salt
            .get_mut(..salt_len)
            .unwrap_or_default()
            .copy_from_slice(salt.get(..salt_len).unwrap_or_default());
        let mut stored_output = [0u8; MAX_OUTPUT_LEN];
        let output_len = output.len().min(MAX_OUTPUT_LEN);
        stored_output
            .get_mut(..output_len)
            .unwrap_or_default()
            .copy_from_slice(output.get(..output_len).unwrap_or_default());
        Self {
            phc: phc.into(),
            kind,
            salt_len: u8::try_from(salt_len).unwrap_or(0),
            salt: stored_salt,
            output_len: u8::try_from(output_len).unwrap_or(0),
            output: stored_output,
        }
    }

    /// The PHC string, as stored.
    pub fn as_str(&self) -> &str {
        &self.phc
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        match self.kind {
            Kind::HmacSha256 => Scheme::HmacSha256,
            Kind::Argon2 { variant, .. } => Scheme::Argon2(variant),
        }
    }

    /// The Argon2 cost parameters the PHC string claims (`None` for the fast
    /// scheme).
    pub fn cost(&self) -> Option<Cost> {
        match self.kind {
            Kind::HmacSha256 => None,
            Kind::Argon2 { cost, .. } => Some(cost),
        }
    }

    /// Whether checking a secret against this verifier runs Argon2.
    #[must_use]
    pub fn is_slow(&self) -> bool {
        self.scheme().is_slow()
    }

    fn salt(&self) -> &[u8] {
        self.salt
            .get(..usize::from(self.salt_len))
            .unwrap_or_default()
    }

    fn output(&self) -> &[u8] {
        self.output
            .get(..usize::from(self.output_len))
            .unwrap_or_default()
    }

    /// Checks the verifier against `policy` (for `secret`'s kind), then
    /// whether `secret` matches it: `Ok(())` only if it does, so that
    /// `verifier.verify(&secret, &policy)?;` cannot let a wrong secret through.
    /// The final comparison is constant-time.
    ///
    /// An Argon2 verifier allocates its memory for this call; a server
    /// verifying often uses [`Verifier::verify_with_memory`] or the
    /// [`Authenticator`](crate::Authenticator), which reuse it.
    ///
    /// ```
    /// use structure_access::{HashPolicy, Secret, Verifier, VerifierError};
    /// # use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let mut rng = ChaCha20Rng::seed_from_u64(1);
    /// let secret = Secret::generate(&mut rng);
    /// let policy = HashPolicy::default();
    /// let verifier = Verifier::create(&secret, &policy, &mut rng)?;
    /// assert!(verifier.as_str().starts_with("$hmac-sha256$v=1$"));
    /// verifier.verify(&secret, &policy)?;
    /// let other = Secret::generate(&mut rng);
    /// assert_eq!(verifier.verify(&other, &policy), Err(VerifierError::Mismatch));
    /// # Ok::<(), VerifierError>(())
    /// ```
    pub fn verify(&self, secret: &Secret, policy: &HashPolicy) -> Result<(), VerifierError> {
        self.verify_with_memory(secret, policy, &mut Argon2Memory::new())
    }

    /// Like [`Verifier::verify`], reusing `memory` for Argon2's blocks.
    pub fn verify_with_memory(
        &self,
        secret: &Secret,
        policy: &HashPolicy,
        memory: &mut Argon2Memory,
    ) -> Result<(), VerifierError> {
        policy.check_for(self, secret)?;
        if bool::from(self.matches(secret.as_bytes(), memory)?) {
            Ok(())
        } else {
            Err(VerifierError::Mismatch)
        }
    }

    /// Computes the verifier's output for `secret` with its own parameters and
    /// compares it with the stored output in constant time. Bounds must have
    /// been checked.
    pub(crate) fn matches(
        &self,
        secret: &[u8],
        memory: &mut Argon2Memory,
    ) -> Result<subtle::Choice, VerifierError> {
        let mut computed = [0u8; MAX_OUTPUT_LEN];
        let len = usize::from(self.output_len);
        let out = computed.get_mut(..len).unwrap_or_default();
        compute(self.kind, secret, self.salt(), out, memory)?;
        let equal = out.ct_eq(self.output());
        computed.zeroize();
        Ok(equal)
    }
}

/// Computes the output of `kind` for `secret` and `salt` into `out`. Argon2
/// runs in `memory`, and the blocks it used are wiped afterwards.
fn compute(
    kind: Kind,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Argon2Memory,
) -> Result<(), VerifierError> {
    let (variant, cost) = match kind {
        Kind::HmacSha256 => {
            // Any key length is accepted by HMAC: this cannot fail.
            let mut mac =
                <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(salt).map_err(|_| {
                    VerifierError::Length {
                        what: "salt",
                        len: salt.len(),
                        min: MIN_SALT_LEN,
                        max: MAX_SALT_LEN,
                    }
                })?;
            mac.update(secret);
            let tag = mac.finalize().into_bytes();
            let n = out.len().min(tag.len());
            if let (Some(out), Some(tag)) = (out.get_mut(..n), tag.get(..n)) {
                out.copy_from_slice(tag);
            }
            return Ok(());
        }
        Kind::Argon2 { variant, cost } => (variant, cost),
    };
    let params = argon2_params(cost, out.len())?;
    let count = params.block_count();
    let blocks = memory.reserve(count, cost.m)?;
    let argon2 = Argon2::new(variant.algorithm(), Version::V0x13, params);
    let result = argon2.hash_password_into_with_memory(secret, salt, out, blocks);
    memory.wipe(count);
    result.map_err(|e| VerifierError::InvalidParams {
        m: cost.m,
        t: cost.t,
        p: cost.p,
        reason: argon2_reason(e),
    })
}

impl PartialEq for Verifier {
    fn eq(&self, other: &Self) -> bool {
        self.phc == other.phc
    }
}
impl Eq for Verifier {}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.phc)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Verifier");
        s.field("scheme", &self.scheme());
        if let Some(cost) = self.cost() {
            s.field("cost", &cost);
        }
        s.finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for Verifier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.phc)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for Verifier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(crate::serde_util::FromStrVisitor::new(
            "a verifier PHC string (hmac-sha256 or argon2)",
        ))
    }
}

impl Cost {
    /// Memory cost `m` in KiB, time cost `t` and parallelism `p`. Whether they
    /// are acceptable is for a [`HashPolicy`] and Argon2 to say.
    ///
    /// ```
    /// use structure_access::Cost;
    ///
    /// const OWASP: Cost = structure_access::Cost::new(19456, 2, 1);
    /// assert_eq!((OWASP.m, OWASP.t, OWASP.p), (19456, 2, 1));
    /// ```
    #[must_use]
    pub const fn new(m: u32, t: u32, p: u32) -> Self {
        Self { m, t, p }
    }
}

/// Hashes the PHC string, as `==` compares it.
impl core::hash::Hash for Verifier {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.phc.hash(state);
    }
}

impl TryFrom<&str> for Verifier {
    type Error = VerifierError;

    /// Same as [`FromStr`].
    fn try_from(text: &str) -> Result<Self, VerifierError> {
        text.parse()
    }
}

impl TryFrom<alloc::string::String> for Verifier {
    type Error = VerifierError;

    /// Same as [`FromStr`].
    fn try_from(text: alloc::string::String) -> Result<Self, VerifierError> {
        text.parse()
    }
}

impl FromStr for Variant {
    type Err = VerifierError;

    /// The PHC identifier: `argon2id`, `argon2i` or `argon2d`.
    ///
    /// ```
    /// use structure_access::Variant;
    ///
    /// assert_eq!("argon2id".parse::<Variant>()?, Variant::Argon2id);
    /// assert!("scrypt".parse::<Variant>().is_err());
    /// # Ok::<(), structure_access::VerifierError>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, VerifierError> {
        match text {
            "argon2id" => Ok(Self::Argon2id),
            "argon2i" => Ok(Self::Argon2i),
            "argon2d" => Ok(Self::Argon2d),
            other => Err(VerifierError::UnknownAlgorithm {
                found: other
                    .chars()
                    .take(32)
                    .collect::<alloc::string::String>()
                    .into(),
            }),
        }
    }
}
