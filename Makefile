# datagate — top-level build.
#
#   make run      install what is missing, build, start the demo gateway
#   make stop     stop what `make run` started
#   make test     build and run the whole suite with prove
#   make build    module (.so), command-line tool, unit tests
#   make fuzz     run the libFuzzer targets for a bounded time (FUZZ_SECONDS)
#   make asan     unit tests and fuzz corpora under AddressSanitizer
#   make valgrind the same, then the nginx suite with nginx under valgrind
#   make bench    benchmarks (scripts/bench-*)

SHELL       := /bin/bash
TOP         := $(CURDIR)
BUILD       := $(TOP)/build
CC          ?= cc
CFLAGS      ?= -O2 -g
DG_CFLAGS    = $(CFLAGS) -std=gnu99 -Wall -Wextra -Wno-unused-parameter \
               -fPIC -I$(TOP)/module/core
DG_LIBS      = -lyaml -lcrypto -lhiredis -lz -lm

CORE_SRC    := $(sort $(wildcard module/core/*.c))
CORE_HDR    := $(wildcard module/core/*.h)
CORE_OBJ    := $(patsubst module/core/%.c,$(BUILD)/core/%.o,$(CORE_SRC))
UNIT_SRC    := $(sort $(wildcard module/core/t/t_*.c))
UNIT_BIN    := $(patsubst module/core/t/%.c,$(BUILD)/t/%,$(UNIT_SRC))
FUZZ_SRC    := $(sort $(wildcard module/fuzz/fuzz_*.c))
CORPUS_BIN  := $(patsubst module/fuzz/fuzz_%.c,$(BUILD)/t/t_corpus_%,$(FUZZ_SRC))
GLUE_SRC    := $(wildcard module/*.c module/*.h module/config)
NGX_SRC     := /usr/share/nginx/src
MODULE_SO   := $(BUILD)/modules/ngx_http_datagate_module.so
CLI_BIN     := $(BUILD)/bin/datagate
FUZZ_SECONDS ?= 60

.PHONY: all build deps core cli unit module test run stop fuzz asan bench \
        clean certs valgrind deps-check

all: build

build: deps-check core cli unit module

deps:
	bash scripts/install-deps.sh

# quiet check: install only when something is missing
deps-check:
	@bash scripts/install-deps.sh --check >/dev/null 2>&1 || \
	    bash scripts/install-deps.sh

core: $(BUILD)/libdgcore.a

$(BUILD)/core/%.o: module/core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -c $< -o $@

$(BUILD)/libdgcore.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

cli: $(CLI_BIN)

$(CLI_BIN): $(wildcard module/cli/*.c module/cli/*.h) $(BUILD)/libdgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -Imodule/cli -o $@ $(filter %.c,$^) \
	    $(BUILD)/libdgcore.a $(DG_LIBS)

unit: $(UNIT_BIN) $(CORPUS_BIN)

# each fuzz target's kept corpus, replayed as a TAP test without libFuzzer
$(BUILD)/t/t_corpus_%: module/fuzz/fuzz_%.c module/fuzz/replay.c \
        $(BUILD)/libdgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -Imodule/core/t \
	    -DREPLAY_CORPUS='"module/fuzz/corpus/$*"' -o $@ $< \
	    module/fuzz/replay.c $(BUILD)/libdgcore.a $(DG_LIBS)

$(BUILD)/t/%: module/core/t/%.c module/core/t/tap.h $(BUILD)/libdgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -Imodule/core/t -o $@ $< $(BUILD)/libdgcore.a \
	    $(DG_LIBS)

module: $(MODULE_SO)

# nginx's own build of a dynamic module, against Debian's nginx-dev tree
$(MODULE_SO): $(GLUE_SRC) $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)/modules
	@sig=$$(cat module/config; ls module/*.c module/core/*.c); \
	sig=$$(echo "$$sig" | md5sum | cut -d' ' -f1); \
	if [ ! -f $(BUILD)/nginx-src/objs/Makefile ] || \
	   [ "$$(cat $(BUILD)/nginx-src/.dg-sig 2>/dev/null)" != "$$sig" ]; then \
	    rm -rf $(BUILD)/nginx-src && cp -r $(NGX_SRC) $(BUILD)/nginx-src && \
	    cd $(BUILD)/nginx-src && source ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(TOP)/module >$(BUILD)/configure.log 2>&1 \
	    || { tail -30 $(BUILD)/configure.log; exit 1; }; \
	    echo "$$sig" > $(BUILD)/nginx-src/.dg-sig; \
	fi
	$(MAKE) -C $(BUILD)/nginx-src -f objs/Makefile modules
	@# replace, never overwrite in place: a running nginx maps this file
	cp $(BUILD)/nginx-src/objs/ngx_http_datagate_module.so $@.tmp
	mv -f $@.tmp $@

certs:
	bash certs/make-dev-certs.sh $(BUILD)/certs

test: build certs
	bash scripts/run-tests.sh

run: build certs
	bash scripts/run-demo.sh start

stop:
	bash scripts/run-demo.sh stop

fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

asan:
	bash scripts/asan.sh

valgrind: build certs
	bash scripts/asan.sh --valgrind

bench: build certs
	bash scripts/bench-mask
	perl scripts/bench-redis
	bash scripts/bench-audit

clean:
	rm -rf $(BUILD)
