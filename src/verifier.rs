//! Argon2id verifiers: creation, PHC strings, the hashing policy and its bounds.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64ct::{Base64Unpadded, Encoding};
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
    /// The variant is not one of `argon2id`, `argon2i`, `argon2d`.
    #[error(
        "unsupported verifier algorithm `{}`, expected `argon2id`",
        crate::text::Escaped(found)
    )]
    UnknownAlgorithm {
        /// The identifier found (at most 32 characters of it).
        found: Box<str>,
    },
    /// The Argon2 version is not 19 (0x13).
    #[error("unsupported argon2 version `{found}`, expected `19`")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
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

/// The parameters for new verifiers and the bounds accepted for stored ones.
///
/// The default follows OWASP: new verifiers use Argon2id with m=19456 KiB, t=2,
/// p=1; stored verifiers are accepted up to m=262144 KiB (256 MiB), t=16, p=8,
/// Argon2id only. A stored verifier outside the bounds is refused before any
/// hashing, so a corrupted or hostile `m=4194304` costs nothing.
///
/// ```
/// use structure_access::HashPolicy;
///
/// let policy = HashPolicy::default();
/// assert_eq!(policy.params().m, 19456);
/// // Cheap parameters, for tests only.
/// let fast = HashPolicy::default().with_params(64, 1, 1)?;
/// # Ok::<(), structure_access::VerifierError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HashPolicy {
    params: Cost,
    max: Cost,
    allow_argon2i: bool,
    allow_argon2d: bool,
}

impl Default for HashPolicy {
    fn default() -> Self {
        Self {
            params: Cost {
                m: 19456,
                t: 2,
                p: 1,
            },
            max: Cost {
                m: 262_144,
                t: 16,
                p: 8,
            },
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
    /// Sets the parameters of new verifiers (`m` in KiB). They must lie within
    /// the policy's bounds and be valid Argon2 parameters.
    pub fn with_params(mut self, m: u32, t: u32, p: u32) -> Result<Self, VerifierError> {
        self.params = Cost { m, t, p };
        self.check_cost(self.params)?;
        argon2_params(self.params, OUTPUT_LEN)?;
        Ok(self)
    }

    /// Sets the largest parameters accepted in stored verifiers. The parameters of
    /// new verifiers must stay within them.
    pub fn with_bounds(
        mut self,
        max_m: u32,
        max_t: u32,
        max_p: u32,
    ) -> Result<Self, VerifierError> {
        self.max = Cost {
            m: max_m,
            t: max_t,
            p: max_p,
        };
        self.check_cost(self.params)?;
        Ok(self)
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

    /// The parameters of new verifiers.
    pub fn params(&self) -> Cost {
        self.params
    }

    /// The largest parameters accepted in stored verifiers.
    pub fn bounds(&self) -> Cost {
        self.max
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
        Ok(())
    }

    /// Checks a stored verifier against the policy, without hashing anything.
    pub fn check(&self, verifier: &Verifier) -> Result<(), VerifierError> {
        let allowed = match verifier.variant {
            Variant::Argon2id => true,
            Variant::Argon2i => self.allow_argon2i,
            Variant::Argon2d => self.allow_argon2d,
        };
        if !allowed {
            return Err(VerifierError::AlgorithmNotAllowed {
                found: verifier.variant,
            });
        }
        self.check_cost(verifier.cost)?;
        // Argon2's own rule (m ≥ 8 KiB per lane) is checked here too, so that a
        // verifier accepted by the policy can always be computed.
        argon2_params(verifier.cost, usize::from(verifier.output_len))?;
        Ok(())
    }
}

/// A stored Argon2 verifier: a PHC string such as
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
///
/// Parsing checks the shape only (variant, version 19, decimal `m`, `t`, `p` in
/// that order, unpadded base64 salt of 8–64 bytes and output of 16–64 bytes,
/// nothing else); the cost is checked against a [`HashPolicy`] when verifying.
/// Strings produced by libargon2 and the libraries built on it (argon2-cffi,
/// node-argon2, PHP's `password_hash`) have this shape.
///
/// The verifier is not secret, but it allows offline guessing of weak secrets:
/// store it like a password hash.
#[derive(Clone)]
pub struct Verifier {
    phc: Box<str>,
    variant: Variant,
    cost: Cost,
    salt_len: u8,
    salt: [u8; MAX_SALT_LEN],
    output_len: u8,
    output: [u8; MAX_OUTPUT_LEN],
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
            "argon2id" => Variant::Argon2id,
            "argon2i" => Variant::Argon2i,
            "argon2d" => Variant::Argon2d,
            other => {
                let shown: alloc::string::String = other.chars().take(32).collect();
                return Err(VerifierError::UnknownAlgorithm {
                    found: shown.into(),
                });
            }
        };
        r.tag("$v=", "`$v=19`")?;
        let version = r.decimal("a decimal version")?;
        if version != 19 {
            return Err(VerifierError::UnsupportedVersion { found: version });
        }
        r.tag("$m=", "`$m=` and the memory cost")?;
        let m = r.decimal("a decimal memory cost")?;
        r.tag(",t=", "`,t=` and the time cost")?;
        let t = r.decimal("a decimal time cost")?;
        r.tag(",p=", "`,p=` and the parallelism")?;
        let p = r.decimal("a decimal parallelism")?;
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
            variant,
            cost: Cost { m, t, p },
            salt_len: u8::try_from(salt_len).unwrap_or(0),
            salt,
            output_len: u8::try_from(output_len).unwrap_or(0),
            output,
        })
    }
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

    fn wipe(&mut self) {
        // A plain fill is a vectorised memset, several times faster than
        // `zeroize`'s volatile writes over megabytes; `black_box` makes the
        // compiler treat the buffer as read afterwards, so the fill is kept.
        self.blocks.fill(Block::new());
        core::hint::black_box(&mut self.blocks);
    }
}

impl Verifier {
    /// Creates a verifier for `secret` with the policy's parameters and a random
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
        let cost = policy.params;
        let mut output = [0u8; MAX_OUTPUT_LEN];
        let out = output.get_mut(..OUTPUT_LEN).unwrap_or_default();
        compute(
            Variant::Argon2id,
            cost,
            secret.as_bytes(),
            salt,
            out,
            memory,
        )?;
        Ok(Self::from_raw(Variant::Argon2id, cost, salt, out))
    }

    /// A verifier with the policy's parameters that no secret matches in
    /// practice, for the dummy verification of unknown keys.
    pub(crate) fn dummy(policy: &HashPolicy) -> Self {
        Self::from_raw(
            Variant::Argon2id,
            policy.params,
            &[0x5a; SALT_LEN],
            &[0; OUTPUT_LEN],
        )
    }

    /// A verifier from its parts; `salt` and `output` must be within bounds.
    fn from_raw(variant: Variant, cost: Cost, salt: &[u8], output: &[u8]) -> Self {
        let mut salt_b64 = [0u8; 2 * MAX_SALT_LEN];
        let mut out_b64 = [0u8; 2 * MAX_OUTPUT_LEN];
        let salt_text = Base64Unpadded::encode(salt, &mut salt_b64).unwrap_or_default();
        let out_text = Base64Unpadded::encode(output, &mut out_b64).unwrap_or_default();
        let phc = alloc::format!(
            "${variant}$v=19$m={},t={},p={}${salt_text}${out_text}",
            cost.m,
            cost.t,
            cost.p
        );
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
            variant,
            cost,
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

    /// The Argon2 variant.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The cost parameters claimed by the PHC string.
    pub fn cost(&self) -> Cost {
        self.cost
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

    /// Checks the verifier against `policy`, then whether `secret` matches it.
    /// The final comparison is constant-time.
    ///
    /// Allocates the Argon2 memory for this call; a server verifying often uses
    /// [`Verifier::verify_with_memory`] or the
    /// [`Authenticator`](crate::Authenticator), which reuse it.
    pub fn verify(&self, secret: &Secret, policy: &HashPolicy) -> Result<bool, VerifierError> {
        self.verify_with_memory(secret, policy, &mut Argon2Memory::new())
    }

    /// Like [`Verifier::verify`], reusing `memory` for Argon2's blocks.
    pub fn verify_with_memory(
        &self,
        secret: &Secret,
        policy: &HashPolicy,
        memory: &mut Argon2Memory,
    ) -> Result<bool, VerifierError> {
        policy.check(self)?;
        Ok(self.matches(secret.as_bytes(), memory)?.into())
    }

    /// Computes the hash of `secret` with this verifier's parameters and compares
    /// it with the stored output in constant time. Bounds must have been checked.
    pub(crate) fn matches(
        &self,
        secret: &[u8],
        memory: &mut Argon2Memory,
    ) -> Result<subtle::Choice, VerifierError> {
        let mut computed = [0u8; MAX_OUTPUT_LEN];
        let len = usize::from(self.output_len);
        let out = computed.get_mut(..len).unwrap_or_default();
        compute(self.variant, self.cost, secret, self.salt(), out, memory)?;
        let equal = out.ct_eq(self.output());
        computed.zeroize();
        Ok(equal)
    }
}

/// Runs Argon2 into `out`, in `memory`, and wipes `memory` afterwards.
fn compute(
    variant: Variant,
    cost: Cost,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Argon2Memory,
) -> Result<(), VerifierError> {
    let params = argon2_params(cost, out.len())?;
    let blocks = memory.reserve(params.block_count(), cost.m)?;
    let argon2 = Argon2::new(variant.algorithm(), Version::V0x13, params);
    let result = argon2.hash_password_into_with_memory(secret, salt, out, blocks);
    memory.wipe();
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
        f.debug_struct("Verifier")
            .field("variant", &self.variant)
            .field("cost", &self.cost)
            .finish_non_exhaustive()
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
            "an argon2 PHC string",
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
    /// const OWASP: Cost = Cost::new(19456, 2, 1);
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
