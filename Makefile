# datagate — top-level build.
#
#   make deps     install the Debian packages datagate needs (root or sudo)
#   make run      install what the demo is missing, build, start the demo
#   make stop     stop what `make run` started
#   make build    module (.so), command-line tool, unit tests; installs
#                 nothing: fails naming `make deps` when a package is missing
#   make test     build and run the whole suite with prove
#   make install  module, CLI, man page and docs into $(DESTDIR)$(PREFIX)
#                 (docs/build.md); install-module, install-tools: each half
#   make deb      Debian packages in build/deb/ (dpkg-buildpackage, lintian)
#   make test-deb build, install, use, purge them in the system's nginx (root)
#   make fuzz     run the libFuzzer targets for a bounded time (FUZZ_SECONDS)
#   make asan     unit tests and fuzz corpora under AddressSanitizer
#   make valgrind the same, then the nginx suite with nginx under valgrind
#   make bench    benchmarks (scripts/bench-*)
#   make version  print the version (module/core/dg_version.h)
#
# CPPFLAGS, CFLAGS and LDFLAGS are the packager's: they come first for the
# core, CLI and unit tests (the warnings below are always added), and reach
# the module through nginx's --with-cc-opt/--with-ld-opt, after nginx's own
# flags (NGX_CC_OPT, NGX_LD_OPT to set them apart).

SHELL       := /bin/bash
TOP         := $(CURDIR)
BUILD       := $(TOP)/build
CC          ?= cc
CFLAGS      ?= -O2 -g
DG_CFLAGS    = $(CPPFLAGS) $(CFLAGS) -std=gnu99 -Wall -Wextra \
               -Wno-unused-parameter -fPIC -I$(TOP)/module/core
DG_LIBS      = -lyaml -lcrypto -lhiredis -lz -lm

# nginx's source tree the module is built against (Debian's nginx-dev)
NGX_SRC     ?= /usr/share/nginx/src
NGX_CC_OPT  ?= $(CPPFLAGS) $(CFLAGS)
NGX_LD_OPT  ?= $(LDFLAGS)

# make install: $(DESTDIR)$(PREFIX); PREFIX=/usr gives Debian's module path
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MODULESDIR  ?= $(PREFIX)/lib/nginx/modules
DATADIR     ?= $(PREFIX)/share
DOCDIR      ?= $(DATADIR)/doc/datagate
MANDIR      ?= $(DATADIR)/man
INSTALL     ?= install

VERSION     := $(shell sed -n 's/^\#define DG_VERSION *"\(.*\)"$$/\1/p' \
                   module/core/dg_version.h)

CORE_SRC    := $(sort $(wildcard module/core/*.c))
CORE_HDR    := $(wildcard module/core/*.h)
CORE_OBJ    := $(patsubst module/core/%.c,$(BUILD)/core/%.o,$(CORE_SRC))
UNIT_SRC    := $(sort $(wildcard module/core/t/t_*.c))
UNIT_BIN    := $(patsubst module/core/t/%.c,$(BUILD)/t/%,$(UNIT_SRC))
FUZZ_SRC    := $(sort $(wildcard module/fuzz/fuzz_*.c))
CORPUS_BIN  := $(patsubst module/fuzz/fuzz_%.c,$(BUILD)/t/t_corpus_%,$(FUZZ_SRC))
GLUE_SRC    := $(wildcard module/*.c module/*.h module/config \
                 module/status/*)
MODULE_SO   := $(BUILD)/modules/ngx_http_datagate_module.so
CLI_BIN     := $(BUILD)/bin/datagate
MAN_PAGE    := $(BUILD)/man/datagate.1
FUZZ_SECONDS ?= 60

.PHONY: all build deps build-deps core cli unit module test run stop fuzz \
        asan bench clean certs valgrind install install-module \
        install-tools uninstall version dist man deb test-deb FORCE

all: build

build: core cli unit module

deps:
	bash scripts/install-deps.sh

# checks only: every compile waits for it, so a missing package is named
# once instead of as a compiler error
build-deps:
	@bash scripts/install-deps.sh --check build

core: $(BUILD)/libdgcore.a

$(BUILD)/core/%.o: module/core/%.c $(CORE_HDR) | build-deps
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -c $< -o $@

$(BUILD)/libdgcore.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

cli: $(CLI_BIN)

$(CLI_BIN): $(wildcard module/cli/*.c module/cli/*.h) $(BUILD)/libdgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -Imodule/cli -o $@ $(filter %.c,$^) \
	    $(BUILD)/libdgcore.a $(LDFLAGS) $(DG_LIBS)

unit: $(UNIT_BIN) $(CORPUS_BIN)

# each fuzz target's kept corpus, replayed as a TAP test without libFuzzer
$(BUILD)/t/t_corpus_%: module/fuzz/fuzz_%.c module/fuzz/replay.c \
        $(BUILD)/libdgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -Imodule/core/t \
	    -DREPLAY_CORPUS='"module/fuzz/corpus/$*"' -o $@ $< \
	    module/fuzz/replay.c $(BUILD)/libdgcore.a $(LDFLAGS) $(DG_LIBS)

$(BUILD)/t/%: module/core/t/%.c module/core/t/tap.h $(BUILD)/libdgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(DG_CFLAGS) -Imodule/core/t -o $@ $< $(BUILD)/libdgcore.a \
	    $(LDFLAGS) $(DG_LIBS)

module: $(MODULE_SO)

man: $(MAN_PAGE)

# the manual page is the tool's own help (scripts/make-manpage)
$(MAN_PAGE): $(CLI_BIN) scripts/make-manpage
	@mkdir -p $(dir $@)
	perl scripts/make-manpage $(CLI_BIN) > $@.tmp
	mv -f $@.tmp $@

# What shaped nginx's configuration for the module: module/config and the
# status page it embeds (module/status/), the source list, the nginx
# source tree and its version (the nginx-dev package version, as a Debian
# update keeps NGINX_VERSION), its configure flags, the compiler and the
# flags given.  Computed on every run and rewritten only
# when it changes, so that a change rebuilds and reconfigures.
MODULE_SIG  := $(BUILD)/module.sig

$(MODULE_SIG): FORCE
	@mkdir -p $(dir $@)
	@{ cat module/config module/status/*; ls module/*.c module/core/*.c; \
	   echo "$(NGX_SRC)"; cat $(NGX_SRC)/conf_flags 2>/dev/null; \
	   grep 'define NGINX_VERSION ' $(NGX_SRC)/src/core/nginx.h 2>/dev/null; \
	   dpkg-query -W -f='$${Version}' nginx-dev 2>/dev/null; \
	   echo; echo '$(CC)|$(NGX_CC_OPT)|$(NGX_LD_OPT)'; } \
	 | md5sum | cut -d' ' -f1 >$@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@

# nginx's own build of a dynamic module, against a copy of NGX_SRC,
# configured again when the signature above changes.  nginx's Makefile
# keeps its own CFLAGS (warnings, -Werror): this Makefile's command-line
# variables are not passed on to it (MAKEOVERRIDES), the packager's flags
# arrive through --with-cc-opt, after nginx's.
$(MODULE_SO): MAKEOVERRIDES =
$(MODULE_SO): $(GLUE_SRC) $(CORE_SRC) $(CORE_HDR) $(MODULE_SIG) | build-deps
	@mkdir -p $(BUILD)/modules
	@[ -f $(NGX_SRC)/conf_flags ] || { echo "datagate: no nginx source" \
	    "tree in $(NGX_SRC) (Debian: nginx-dev; run \`make deps\`)" >&2; \
	    exit 1; }
	@sig=$$(cat $(MODULE_SIG)); \
	if [ ! -f $(BUILD)/nginx-src/objs/Makefile ] || \
	   [ "$$(cat $(BUILD)/nginx-src/.dg-sig 2>/dev/null)" != "$$sig" ]; then \
	    echo "datagate: configuring nginx ($(NGX_SRC)) for the module"; \
	    rm -rf $(BUILD)/nginx-src && cp -r $(NGX_SRC) $(BUILD)/nginx-src && \
	    cd $(BUILD)/nginx-src && source ./conf_flags && \
	    env -u CFLAGS -u CPPFLAGS -u LDFLAGS ./configure \
	        "$${NGX_CONF_FLAGS[@]}" --with-cc='$(CC)' \
	        --with-cc-opt='$(strip $(NGX_CC_OPT))' \
	        --with-ld-opt='$(strip $(NGX_LD_OPT))' \
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

# checked first, so that a missing package is named before a long build
test:
	@bash scripts/install-deps.sh --check test
	$(MAKE) build certs
	bash scripts/run-tests.sh

# the one target besides deps that installs: what the demo is missing
run:
	bash scripts/install-deps.sh run
	$(MAKE) build certs
	bash scripts/run-demo.sh start

stop:
	bash scripts/run-demo.sh stop

fuzz:
	@bash scripts/install-deps.sh --check dev
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

asan:
	@bash scripts/install-deps.sh --check build
	bash scripts/asan.sh

valgrind:
	@bash scripts/install-deps.sh --check test dev
	$(MAKE) build certs
	bash scripts/asan.sh --valgrind

bench:
	@bash scripts/install-deps.sh --check test dev
	$(MAKE) build certs
	bash scripts/bench-mask
	perl scripts/bench-redis
	bash scripts/bench-audit
	bash scripts/bench-report

# Files as a package lays them out (docs/build.md).  The docs keep the
# repository's layout so that README.md's links hold.
DG_DOCS     := README.md LICENSE $(wildcard docs/*.md docs/*.json) \
               certs/README.md \
               policy/schema.md policy/sample.yaml \
               $(sort $(shell find policy/examples -type f)) \
               config/nginx.conf config/conf.d/datagate.conf
DG_LOADCONF := $(DATADIR)/nginx/modules-available/mod-http-datagate.conf

install: install-module install-tools

# the module and its load_module line (the nginx side)
install-module: $(MODULE_SO)
	$(INSTALL) -d $(DESTDIR)$(MODULESDIR) $(DESTDIR)$(dir $(DG_LOADCONF))
	$(INSTALL) -m 644 $(MODULE_SO) $(DESTDIR)$(MODULESDIR)/
	echo "load_module $(MODULESDIR)/$(notdir $(MODULE_SO));" \
	    > $(DESTDIR)$(DG_LOADCONF)
	chmod 644 $(DESTDIR)$(DG_LOADCONF)

# the command-line tool, its manual page, the docs and examples
install-tools: $(CLI_BIN) $(MAN_PAGE)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(MAN_PAGE) $(DESTDIR)$(MANDIR)/man1/
	for f in $(DG_DOCS); do \
	    $(INSTALL) -D -m 644 $$f $(DESTDIR)$(DOCDIR)/$$f || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(MODULESDIR)/$(notdir $(MODULE_SO)) \
	    $(DESTDIR)$(BINDIR)/$(notdir $(CLI_BIN)) $(DESTDIR)$(DG_LOADCONF) \
	    $(DESTDIR)$(MANDIR)/man1/$(notdir $(MAN_PAGE))
	rm -rf $(DESTDIR)$(DOCDIR)

# Debian packages (docs/build.md, "Debian packages"): dpkg-buildpackage in
# a copy of the tree under build/deb/, then lintian
deb:
	@bash scripts/install-deps.sh --check deb
	bash scripts/build-deb

# installs the packages into the system's nginx, uses them, purges them:
# root, on a machine whose nginx may be touched (CI)
test-deb: deb certs
	bash scripts/test-deb

version:
	@echo $(VERSION)

# the release tarball of the committed tree
dist:
	@mkdir -p $(BUILD)
	git archive --prefix=datagate-$(VERSION)/ \
	    -o $(BUILD)/datagate-$(VERSION).tar.gz HEAD
	@echo $(BUILD)/datagate-$(VERSION).tar.gz

clean:
	rm -rf $(BUILD)

FORCE:
