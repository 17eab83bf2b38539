# Sourced by the benchmarks: sets HP to the healthprobe binary to measure, $HEALTHPROBE if
# given, else the static (musl) release build, built here first (the one the README's
# figures come from).
if [[ -z ${HEALTHPROBE:-} ]]; then
    rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl >&2
    cargo build --release --locked -p healthprobe --target x86_64-unknown-linux-musl >&2
    HEALTHPROBE=target/x86_64-unknown-linux-musl/release/healthprobe
fi
HP=$(realpath "$HEALTHPROBE")
