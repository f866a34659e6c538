# minilora — build, test and reproduce everything from this one file.
#
#   make            build bin/lora and its lora-* links
#   make test       install missing Debian packages, build, run the test suite (fast)
#   make deps       only install the Debian packages the build needs
#   make test WERROR=1   the same with every compiler warning an error (CI)
#   make format-check    clang-format --dry-run -Werror on the sources (mk/format.mk)

CC      ?= cc
PKGS    := openblas libcjson
# -march=native: the binary is built on the machine that runs it (as llama.cpp does);
# `make ARCH=` gives a portable build.
ARCH    ?= -march=native
OPT     ?= -O3
CFLAGS  ?= $(OPT) $(ARCH) -g
# Recursively expanded on purpose: pkg-config runs only when a recipe needs the flags,
# i.e. after the deps stamp has installed the packages.
# `make ... WERROR=1` (as CI does) makes every warning an error, in every build (normal, asan, fuzz).
WERROR  ?=
ALL_CFLAGS = $(CFLAGS) -std=c11 -fno-trapping-math -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
             -Wshadow -Wno-unused-parameter $(if $(filter 1,$(WERROR)),-Werror) $(INC_FLAGS) \
             $(shell pkg-config --cflags $(PKGS))
LIBS    = $(shell pkg-config --libs $(PKGS)) -llapacke -lpthread -lm
TESTLIBS = $(shell pkg-config --libs cmocka)

BUILD   := build
# src/ and include/ have one folder per layer (core, adapters, training, evaluation, formats,
# util, jobs) plus src/cli; every folder is on the include path, so a header is named by its file.
LAYERS  := core adapters training evaluation formats util jobs
INC_FLAGS := $(LAYERS:%=-Iinclude/%) $(LAYERS:%=-Isrc/%) -Isrc/cli -Isrc
SRC     := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
OBJ     := $(SRC:src/%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:src/cli/%.c=$(BUILD)/cli/%.o)
LIB     := $(BUILD)/libminilora.a
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SH  := $(wildcard tests/test_*.sh)
DEPS_STAMP := $(BUILD)/.deps-ok
# The command names, from the table between COMMANDS-BEGIN and COMMANDS-END in src/cli/main.c
# (the one list of commands; `bin/lora --list-commands` prints the same).
COMMANDS := $(shell sed -n '/COMMANDS-BEGIN/,/COMMANDS-END/s/^ *{"\([a-z0-9_-]*\)",.*/\1/p' src/cli/main.c)
ifeq ($(strip $(COMMANDS)),)
$(error no command names found between COMMANDS-BEGIN and COMMANDS-END in src/cli/main.c)
endif

.PHONY: all deps test check-all clean base data bench bench-torch demo results install uninstall
all: bin/lora

deps:
	@sh scripts/deps.sh

$(DEPS_STAMP): scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: src/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(OBJ)
	rm -f $@ && ar rcs $@ $^

bin/lora: $(CLI_OBJ) $(LIB)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LIBS)
	@for c in $(COMMANDS); do ln -sf lora bin/lora-$$c; done

$(BUILD)/tests/%: tests/%.c $(LIB) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LIBS) $(TESTLIBS)

# test_noalloc counts the library's allocations through these wrappers.
$(BUILD)/tests/test_noalloc $(BUILD)/asan/tests/test_noalloc: TESTLIBS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
	-Wl,--wrap=aligned_alloc,--wrap=posix_memalign,--wrap=strdup

test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory bin/lora $(TEST_BIN)
	@sh tests/run.sh $(TEST_BIN) $(TEST_SH)

# The heavier checks: the suite, the suite again under ASan+UBSan, and every fuzz target for
# FUZZ_SECONDS (60 by default) each.
check-all: test
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz

# Regenerate the data files from scripts/gen_data.py (byte-identical to the committed ones).
data:
	python3 scripts/gen_data.py

# Pretrain the base model from configs/pretrain.json on the committed data. Same seed, same
# BLAS kernel: the same bytes, whatever the thread count. The learning curve goes to results/.
base: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory bin/lora
	@mkdir -p results
	bin/lora-pretrain --curve results/pretrain-curve.csv --out data/minigpt-base.safetensors
	@sh scripts/plot-curve.sh || true

# The main job: build, then with the shipped base train the rank-8 alpha-16 adapter on the
# irregular verbs and evaluate it against the base on the held-out verbs.
demo: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory bin/lora
	@sh scripts/demo.sh

# Every results file the README quotes (recipes, sweep, analysis, demo, bench, the scaling,
# alpha and forgetting experiments), then the README's quoted blocks; about 1 h 45 min on 2
# cores. Finished cells are reused.
results: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory bin/lora
	@sh scripts/deps.sh gnuplot-nox
	sh scripts/results.sh

# Throughput and memory against the machine's sgemm peak, as ratios measured in one run, then
# the PyTorch peer (the reference model of tests/reference, same shapes and optimizer, best of 1
# and 2 threads) measured right after, each row with its ratio C / PyTorch. make bench RUNS=5:
# five such runs, then the median and min-max range of every figure and ratio
# (scripts/bench_summary.py).
RUNS ?= 1
bench: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory bin/lora
	@sh scripts/deps.sh python3-torch
	sh scripts/bench.sh --runs $(RUNS)

# The PyTorch rows alone.
bench-torch:
	@sh scripts/deps.sh python3-torch
	/usr/bin/python3 scripts/bench_torch.py

# make install PREFIX=/opt/minilora: the binary and its lora-* links, the man page (one page,
# lora-*.1 point to it), and the shipped base, data and configs under share/minilora, where
# the installed commands find their defaults.
PREFIX  ?= /usr/local
DESTDIR ?=
SHARE   = $(DESTDIR)$(PREFIX)/share/minilora
MAN1    = $(DESTDIR)$(PREFIX)/share/man/man1
install: bin/lora
	install -d $(DESTDIR)$(PREFIX)/bin $(MAN1) $(SHARE)/data $(SHARE)/configs
	install -m 755 bin/lora $(DESTDIR)$(PREFIX)/bin/lora
	for c in $(COMMANDS); do ln -sf lora $(DESTDIR)$(PREFIX)/bin/lora-$$c; done
	install -m 644 man/lora.1 $(MAN1)/lora.1
	for c in $(COMMANDS); do echo ".so man1/lora.1" > $(MAN1)/lora-$$c.1; done
	install -m 644 data/*.jsonl data/MANIFEST.json data/minigpt-base.safetensors $(SHARE)/data/
	install -m 644 configs/*.json $(SHARE)/configs/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/lora $(MAN1)/lora.1
	for c in $(COMMANDS); do rm -f $(DESTDIR)$(PREFIX)/bin/lora-$$c $(MAN1)/lora-$$c.1; done
	rm -rf $(SHARE)

clean:
	rm -rf $(BUILD) bin

# extra targets (fuzzing, sanitizers, ...) live in their own fragments
include $(wildcard mk/*.mk)

-include $(OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
