#!/usr/bin/env bash
# Checks what can be checked of docker-compose.yml without a Docker engine:
# it parses; one service builds the image and every other app service uses
# it as built; every variable it reads is listed in .env.compose.example; and
# the Dockerfile's build command builds the three binaries the image ships.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY'
import re, sys, yaml
compose = yaml.safe_load(open("docker-compose.yml"))
services = compose["services"]
builders = [name for name, s in services.items() if "build" in s]
assert builders == ["api"], f"exactly one service builds the image, found {builders}"
image = services["api"]["image"]
for name, s in services.items():
    if s.get("image") == image and name != "api":
        assert s.get("pull_policy") == "never", f"{name} would pull {image}"
used = set(re.findall(r"\$\{([A-Z0-9_]+)", open("docker-compose.yml").read()))
listed = set(re.findall(r"^([A-Z0-9_]+)=", open(".env.compose.example").read(), re.M))
missing = sorted(used - listed)
assert not missing, f"not in .env.compose.example: {missing}"
print(f"compose: {len(services)} services, one image built once, {len(used)} variables all listed")
PY

build=$(sed -n 's/^RUN \(cargo build .*\)$/\1/p' Dockerfile)
[ -n "$build" ] || { echo "no cargo build in the Dockerfile" >&2; exit 1; }
echo "== $build"
$build
for bin in $(sed -n 's|^COPY --from=build \(.*\) /usr/local/bin/$|\1|p' Dockerfile); do
    bin=${bin#/src/}
    [ -x "$bin" ] || { echo "the image would lack $bin" >&2; exit 1; }
    "$bin" --help >/dev/null
done
echo "Dockerfile build command builds every binary the image ships"
