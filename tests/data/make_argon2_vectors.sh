#!/bin/sh
# Regenerates tests/data/argon2_vectors.txt: Argon2 hashes made by the common
# libraries with their *default* parameters, as a platform migrating its
# existing secrets would hold them. tests/argon2_vectors.rs checks that each
# verifies under `HashPolicy::default()` (and that a wrong secret does not).
#
# Needs python3 with `pip install argon2-cffi` and node with `npm install argon2`
# (node-argon2), run here in a temporary directory:
#
#   sh tests/data/make_argon2_vectors.sh > tests/data/argon2_vectors.txt
#
# Each line: library and version, a tab, the secret, a tab, the PHC string.
set -eu
SECRETS="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 correct-horse-battery-staple"
echo "# made by tests/data/make_argon2_vectors.sh; library<TAB>secret<TAB>phc"
for secret in $SECRETS; do
    python3 - "$secret" <<'PY'
import sys, importlib.metadata as m
from argon2 import PasswordHasher
secret = sys.argv[1]
version = "argon2-cffi %s (argon2-cffi-bindings %s)" % (m.version("argon2-cffi"), m.version("argon2-cffi-bindings"))
print("%s\t%s\t%s" % (version, secret, PasswordHasher().hash(secret)))
PY
done
dir=$(mktemp -d)
(cd "$dir" && npm init -y >/dev/null 2>&1 && npm install --silent argon2 >/dev/null 2>&1)
for secret in $SECRETS; do
    NODE_PATH="$dir/node_modules" node -e '
const argon2 = require("argon2");
const version = require("argon2/package.json").version;
argon2.hash(process.argv[1]).then((phc) => console.log(`node-argon2 ${version}\t${process.argv[1]}\t${phc}`));
' "$secret"
done
rm -rf "$dir"
