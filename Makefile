# Thin wrapper around meson/ninja. See README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps demo check bench fuzz clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@scripts/install-deps.sh
	meson setup $(BUILD) --buildtype=release -Doptimization=2 -Dwerror=true

deps:
	@scripts/install-deps.sh

demo: all
	@scripts/demo.sh $(BUILD)/dimg

check:
	@scripts/install-deps.sh
	@scripts/check.sh $(ASAN_BUILD)

bench: all
	@bench/bench.sh $(BUILD)/dimg

fuzz:
	@scripts/install-deps.sh
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true --buildtype=debug -Db_lundef=false 2>/dev/null || true
	ninja -C $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
