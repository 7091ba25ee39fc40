# redwork -- build, test, demo, install.
#
#   make            bin/redworkd, bin/redwork, lib/libredwork.{a,so}, handlers/*.so
#   make bench      framework vs raw-hiredis ceiling, one table (bench/run)
#   make fuzz       libFuzzer on requests, the config, RESP, stream entries and reply envelopes (FUZZ_SECONDS each)
#   make test       every suite (installs missing Debian packages first)
#   make demo       a throwaway redis-server, the daemon, the seed's requests
#   make check      every suite with what is installed: no network, no package manager
#   make install    PREFIX=/usr/local DESTDIR= (and the directories below)
#   make uninstall  removes exactly what install put there
#   make deb        the Debian packages, into build/deb/
#   make SANITIZE=address,undefined test    the suites under sanitizers
#   WERROR=1        warnings are errors (CI); V=1 shows the commands

VERSION := 0.1.0
# libredwork's ABI: its soname is libredwork.so.$(ABI). Raise it only with
# a change that breaks programs built against the old headers.
ABI := 0

# Where `make install` puts things: the GNU directory variables. With
# PREFIX=/usr, the configuration goes to /etc, libraries to Debian's
# multiarch folder and the units to systemd's own folder.
PREFIX ?= /usr/local
DESTDIR ?=
IS_USR := $(filter /usr,$(PREFIX))
MULTIARCH := $(if $(IS_USR),$(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null))
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
SYSCONFDIR ?= $(if $(IS_USR),/etc,$(PREFIX)/etc)
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
HANDLERSDIR ?= $(LIBDIR)/redwork/handlers
SYSTEMDUNITDIR ?= $(if $(IS_USR),$(shell pkg-config --variable=systemdsystemunitdir systemd \
                      2>/dev/null || echo /lib/systemd/system),$(PREFIX)/lib/systemd/system)
CC ?= cc
CFLAGS ?= -O2 -g
SANITIZE ?=
PYTHON ?= /usr/bin/python3

WARN := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-format-nonliteral $(if $(filter 1,$(WERROR)),-Werror)
SAN := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)
ALL_CPPFLAGS := -Iinclude -Icommon -Iframework -Iclient -D_GNU_SOURCE -DREDWORK_VERSION='"$(VERSION)"' $(CPPFLAGS)
ALL_CFLAGS := -std=c11 $(WARN) -pthread $(SAN) $(CFLAGS)
LIBS := $(shell pkg-config --libs hiredis libcjson inih openssl 2>/dev/null || echo -lhiredis -lcjson -linih -lssl -lcrypto) -ldl -lm -pthread
# The daemon's modules also serve HTTP (framework/http.c: /metrics, /healthz).
DAEMON_LIBS := $(LIBS) $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
# The SDK functions live in the daemon; plugins resolve them at dlopen time.
EXPORT_SDK := -Wl,--export-dynamic-symbol=redwork_*
ALL_LDFLAGS := $(SAN) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

B := build

# The man pages: MAN_PAGES, `make man`, `make check-man`.
include man/man.mk

# common/ is the layer the daemon and libredwork share; framework/ is the
# daemon's modules, main.c apart so tests can link the rest.
COMMON := alloc buffer url sentinel cluster config conn tls log
MODULES := resp loop wire handback holds queue request reply defer plugin publish claim entry \
           source_pubsub source_stream heartbeat watch metrics http notify dispatch pool supervisor \
           call
MODULE_SRCS := $(COMMON:%=common/%.c) $(MODULES:%=framework/%.c)
MODULE_OBJS := $(MODULE_SRCS:%.c=$(B)/%.o)
DAEMON_OBJS := $(B)/framework/main.o $(MODULE_OBJS)

# libredwork: the client and the part of common/ it uses, built
# position-independent with only the API exported.
LIB_SRCS := client/client.c client/envelope.c common/alloc.c common/buffer.c common/url.c common/sentinel.c common/cluster.c common/conn.c \
            common/tls.c common/config.c
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/pic/%.o)
CLI_OBJS := $(B)/client/cli.o $(B)/client/histogram.o $(B)/client/workers.o $(B)/client/top.o \
            $(B)/client/scrape.o

HANDLERS := echo greet sleep fail hash delay
HANDLER_SOS := $(HANDLERS:%=handlers/%.so)
HANDLER_LIBS_hash := -lcrypto
HANDLER_LIBS_delay := -pthread

# Test suites: unit tests link the modules; integration tests drive the
# real daemon against a real redis-server; fixture plugins feed the loader.
UNIT_TESTS := queue config url sentinel cluster request reply plugin resp handback holds loop scrape
INTEGRATION_TESTS := daemon client cli scale stream sentinel cluster metrics notify sdk
TEST_PLUGINS := good newer_minor wrong_major no_symbol no_handle dup_a dup_b init_fails bad_name no_name echo_v2 v1_0 tstate too_small
HARNESS_OBJS := $(B)/tests/integration/harness.o
OOM_OBJS := $(B)/tests/oom.o # makes the Nth allocation fail (tests/oom.h)

UNIT_BINS := $(UNIT_TESTS:%=$(B)/tests/unit/test_%)
INTEGRATION_BINS := $(INTEGRATION_TESTS:%=$(B)/tests/integration/test_%)
TEST_PLUGIN_SOS := $(TEST_PLUGINS:%=$(B)/tests/plugins/%.so)

$(B)/bench/ceiling: $(B)/bench/ceiling.o $(B)/client/histogram.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Fuzzing: clang's libFuzzer with ASan and UBSan, the modules instrumented
# for coverage; each target runs FUZZ_SECONDS from the seeds in tests/fuzz/.
# A crashing input is kept as build/fuzz/<target>-crash-<sha1>: add it to
# tests/fuzz/<target>/ with the fix, as a seed that keeps it fixed.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := request config resp entry envelope
FUZZ_SAN := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJS := $(MODULE_SRCS:%.c=$(B)/fuzz/obj/%.o) $(B)/fuzz/obj/client/envelope.o

$(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(ALL_CPPFLAGS) -std=c11 $(WARN) -pthread $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(B)/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_OBJS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(ALL_CPPFLAGS) -std=c11 $(WARN) -pthread $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(DAEMON_LIBS)

fuzz: deps $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
	$(Q)set -e; for t in $(FUZZ_TARGETS); do echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	    mkdir -p $(B)/fuzz/corpus/$$t; log=$(B)/fuzz/$$t.log; \
	    if ! $(B)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	        -artifact_prefix=$(B)/fuzz/$$t- -print_final_stats=1 \
	        $(B)/fuzz/corpus/$$t tests/fuzz/$$t > $$log 2>&1; then \
	        tail -40 $$log; exit 1; fi; \
	    grep -E '^(INFO: seed corpus|stat::number_of_executed_units|stat::peak_rss)' $$log; done

.PRECIOUS: $(B)/%.o # keep the objects of pattern rules: no rebuild on every make

.PHONY: all deps check check-build check-tools test test-symbols test-unit test-integration test-plugins \
        test-example test-install test-python test-node node-deps demo bench fuzz valgrind tsan \
        install uninstall print-installed print-dir deb clean
.DEFAULT_GOAL := all

all: bin/redworkd bin/redwork lib/libredwork.a lib/libredwork.so lib/libredwork.so.$(ABI) \
     $(HANDLER_SOS)

bin/redworkd: $(DAEMON_OBJS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $(EXPORT_SDK) -o $@ $^ $(DAEMON_LIBS)

bin/redwork: $(CLI_OBJS) lib/libredwork.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

lib/libredwork.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# The shared library: libredwork.so.$(VERSION), soname libredwork.so.$(ABI),
# exporting only redwork_* (client/libredwork.map), and the two links a
# system has: the soname's, and the .so that programs link against.
LIB_SO := lib/libredwork.so.$(VERSION)

$(LIB_SO): $(LIB_OBJS) client/libredwork.map
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libredwork.so.$(ABI) \
	    -Wl,--version-script=client/libredwork.map -o $@ $(LIB_OBJS) $(LIBS)

lib/libredwork.so.$(ABI) lib/libredwork.so: $(LIB_SO)
	$(Q)ln -sf $(notdir $(LIB_SO)) lib/libredwork.so.$(ABI)
	$(Q)ln -sf libredwork.so.$(ABI) lib/libredwork.so

$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (pic)")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c -o $@ $<

$(B)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

handlers/%.so: handlers/%.c include/redwork/handler.h
	@$(if $(Q),echo "  SO      $@")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fPIC -shared $(ALL_LDFLAGS) -o $@ $< -lcjson \
	    $(HANDLER_LIBS_$*)

$(B)/tests/plugins/%.so: tests/plugins/%.c include/redwork/handler.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  SO      $@")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -fPIC -shared -o $@ $< -lcjson

$(B)/tests/unit/test_%: $(B)/tests/unit/test_%.o $(MODULE_OBJS) $(OOM_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $(EXPORT_SDK) -o $@ $^ $(DAEMON_LIBS) -lcriterion

$(B)/tests/integration/test_%: $(B)/tests/integration/test_%.o $(HARNESS_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

$(B)/tests/unit/test_scrape: $(B)/client/scrape.o
$(B)/tests/integration/test_client: $(OOM_OBJS) lib/libredwork.a
$(B)/tests/integration/test_stream: lib/libredwork.a
$(B)/tests/integration/test_sentinel: $(B)/tests/integration/load.o lib/libredwork.a
$(B)/tests/integration/test_cluster: $(B)/tests/integration/load.o lib/libredwork.a

deps:
	$(Q)scripts/deps.sh

# make test: the Debian packages and the Node example's modules, then make
# check. make check touches neither the network nor the package manager.
# Criterion runs each test in its own process; --jobs bounds the parallel
# redis-servers on a 2-core machine.
test: deps node-deps
	$(Q)$(MAKE) --no-print-directory check

check: check-tools
	$(Q)$(MAKE) --no-print-directory check-build
	$(Q)$(MAKE) --no-print-directory test-symbols check-man test-unit test-integration \
	    test-python test-node test-example test-install

# Everything make check runs, built (CI builds it with clang too).
check-build: all man $(UNIT_BINS) $(INTEGRATION_BINS) $(TEST_PLUGIN_SOS)

# What the suites run, with the Debian package that has it: a missing one
# fails make check at once, by name, rather than as a puzzling test failure.
CHECK_TOOLS := redis-server:redis-server openssl:openssl tmux:tmux promtool:prometheus \
               gnuplot:gnuplot-nox groff:groff-base pkg-config:pkg-config

check-tools:
	$(Q)missing=""; for t in $(CHECK_TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || \
	    missing="$$missing $${t%%:*} (Debian package $${t##*:})"; done; \
	    $(PYTHON) -c 'import redis' 2>/dev/null || missing="$$missing python3-redis (for $(PYTHON))"; \
	    pkg-config --exists criterion 2>/dev/null || missing="$$missing criterion (libcriterion-dev)"; \
	    if [ -n "$$missing" ]; then echo "make check: missing:$$missing; install them (make deps)"; \
	    exit 1; fi

# Every symbol the library exports carries its prefix: programs that link
# libredwork.a must not meet our config_load or log_write.
test-symbols: lib/libredwork.a lib/libredwork.so
	$(Q)echo "== symbols of lib/libredwork.a and .so"; \
	    bad=$$( (nm -g --defined-only lib/libredwork.a; nm -D --defined-only lib/libredwork.so) \
	        | awk 'NF == 3 && $$2 != "A" && $$3 !~ /^redwork_/ { print $$3 }' | sort -u); \
	    if [ -n "$$bad" ]; then echo "exported without the redwork_ prefix: $$bad"; exit 1; fi

test-unit:
	$(Q)set -e; for t in $(UNIT_BINS); do echo "== $$t"; \
	    REDWORK_TEST_PLUGINS=$(B)/tests/plugins $$t --jobs 2; done

test-integration:
	$(Q)set -e; for t in $(INTEGRATION_BINS); do echo "== $$t"; \
	    REDWORK_ROOT=$(CURDIR) REDWORK_TEST_PLUGINS=$(B)/tests/plugins $$t --jobs 2; done

test-plugins: $(TEST_PLUGIN_SOS)

# The example handler project, built and tested as its author would: with
# pkg-config against redwork installed into a temporary prefix.
test-example: all
	$(Q)echo "== examples/handler against redwork installed in a temporary prefix"; \
	    tmp=$$(mktemp -d /tmp/redwork-example.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; set -e; \
	    $(MAKE) --no-print-directory -s install PREFIX=$$tmp/prefix; \
	    cp -r examples/handler $$tmp/handler; rm -f $$tmp/handler/hello.so; \
	    PKG_CONFIG_PATH=$$tmp/prefix/lib/pkgconfig PATH=$$tmp/prefix/bin:$$tmp/prefix/sbin:$$PATH \
	        $(MAKE) --no-print-directory -C $$tmp/handler test

test-python:
	$(Q)echo "== tests/python"; REDWORK_ROOT=$(CURDIR) $(PYTHON) -m unittest discover -s tests/python -v

NODE_EXAMPLE := examples/node
NODE_MODULES := $(NODE_EXAMPLE)/node_modules/.package-lock.json

# npm ci when node_modules is missing or older than the package files (npm
# writes node_modules/.package-lock.json on every install). The network:
# make test does it, make check does not.
node-deps: $(NODE_MODULES)

$(NODE_MODULES): $(NODE_EXAMPLE)/package.json $(NODE_EXAMPLE)/package-lock.json
	$(Q)cd $(NODE_EXAMPLE) && npm ci --no-audit --no-fund
	$(Q)touch $@

# The files, not the folder: Node 22+ no longer searches a folder given to --test.
test-node:
	$(Q)if [ ! -e $(NODE_MODULES) ]; then \
	    echo "== tests/node: skipped: $(NODE_EXAMPLE)/node_modules is missing (make test installs it)"; \
	    else echo "== tests/node"; REDWORK_ROOT=$(CURDIR) node --test tests/node/*.test.js; fi

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)bench/run

# The daemon under valgrind memcheck serving 10,000 requests, and the
# concurrency tests against a ThreadSanitizer build (see the scripts).
valgrind: deps all
	$(Q)scripts/valgrind.sh

tsan: deps
	$(Q)scripts/tsan.sh

PKGCONFIGS := redwork-handler redwork-client
UNITS := redworkd.service redworkd@.service

# What `make install` puts where, one list for install and uninstall. The
# config is written only where there is none (an operator's edits stay),
# and uninstall removes it only if it is still the one install wrote.
INSTALLED := $(SBINDIR)/redworkd $(BINDIR)/redwork \
             $(INCLUDEDIR)/redwork/handler.h $(INCLUDEDIR)/redwork/client.h \
             $(LIBDIR)/libredwork.a $(LIBDIR)/$(notdir $(LIB_SO)) $(LIBDIR)/libredwork.so.$(ABI) \
             $(LIBDIR)/libredwork.so $(PKGCONFIGS:%=$(PKGCONFIGDIR)/%.pc) \
             $(HANDLERS:%=$(HANDLERSDIR)/%.so) $(UNITS:%=$(SYSTEMDUNITDIR)/%) \
             $(foreach m,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
INSTALLED_DIRS := $(INCLUDEDIR)/redwork $(HANDLERSDIR) $(LIBDIR)/redwork $(SYSCONFDIR)/redwork
INI := $(SYSCONFDIR)/redwork/redwork.ini

# Substitutes the install directories into a .in file.
SUBST := sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
             -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
             -e 's|@HANDLERSDIR@|$(HANDLERSDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
             -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

# The ini as install writes it (on stdout): handlers_dir is HANDLERSDIR.
INI_TEXT := sed -e 's|^handlers_dir *=.*|handlers_dir = $(HANDLERSDIR)|' etc/redwork.ini

install: all man
	$(Q)install -d $(addprefix $(DESTDIR),$(BINDIR) $(SBINDIR) $(INCLUDEDIR)/redwork \
	    $(PKGCONFIGDIR) $(HANDLERSDIR) $(SYSCONFDIR)/redwork $(SYSTEMDUNITDIR) \
	    $(sort $(foreach m,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $(m))))))
	$(Q)install -m 755 bin/redworkd $(DESTDIR)$(SBINDIR)/
	$(Q)install -m 755 bin/redwork $(DESTDIR)$(BINDIR)/
	$(Q)install -m 644 include/redwork/handler.h include/redwork/client.h \
	    $(DESTDIR)$(INCLUDEDIR)/redwork/
	$(Q)install -m 644 lib/libredwork.a $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	$(Q)ln -sf $(notdir $(LIB_SO)) $(DESTDIR)$(LIBDIR)/libredwork.so.$(ABI)
	$(Q)ln -sf libredwork.so.$(ABI) $(DESTDIR)$(LIBDIR)/libredwork.so
	$(Q)install -m 644 $(HANDLER_SOS) $(DESTDIR)$(HANDLERSDIR)/
	$(Q)for pc in $(PKGCONFIGS); do $(SUBST) $$pc.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$$pc.pc; done
	$(Q)for u in $(UNITS); do $(SUBST) etc/$$u.in > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; done
	$(Q)for m in $(MAN_PAGES); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	$(Q)if [ -e $(DESTDIR)$(INI) ]; then echo "install: $(DESTDIR)$(INI) exists: kept"; \
	    else $(INI_TEXT) > $(DESTDIR)$(INI) && chmod 644 $(DESTDIR)$(INI); fi

uninstall:
	$(Q)rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	$(Q)if $(INI_TEXT) | cmp -s - $(DESTDIR)$(INI); then rm -f $(DESTDIR)$(INI); \
	    elif [ -e $(DESTDIR)$(INI) ]; then echo "uninstall: $(DESTDIR)$(INI) was edited: kept"; fi
	$(Q)for d in $(INSTALLED_DIRS); do \
	    [ ! -d $(DESTDIR)$$d ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$$d; done

# install then uninstall in a temporary DESTDIR: every file lands where the
# variables say, an operator's handler and edited config survive the
# uninstall, and nothing else is left behind.
test-install: all man
	$(Q)echo "== make install / uninstall in a temporary DESTDIR"; \
	    tmp=$$(mktemp -d /tmp/redwork-install.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; set -e; \
	    fail() { echo "test-install: $$*"; exit 1; }; \
	    for prefix in /usr /usr/local; do \
	        $(MAKE) --no-print-directory -s install DESTDIR=$$tmp PREFIX=$$prefix >/dev/null; \
	        for f in $$($(MAKE) --no-print-directory -s print-installed PREFIX=$$prefix); do \
	            [ -e $$tmp$$f ] || fail "PREFIX=$$prefix: not installed: $$f"; done; \
	        $(MAKE) --no-print-directory -s uninstall DESTDIR=$$tmp PREFIX=$$prefix >/dev/null; \
	        left=$$(find $$tmp ! -type d); \
	        [ -z "$$left" ] || fail "PREFIX=$$prefix: left behind after uninstall: $$left"; \
	        find $$tmp -depth -type d -empty -delete; mkdir -p $$tmp; done; \
	    $(MAKE) --no-print-directory -s install DESTDIR=$$tmp PREFIX=/usr >/dev/null; \
	    libdir=$$($(MAKE) --no-print-directory -s print-dir DIR=LIBDIR PREFIX=/usr); \
	    hd=$$($(MAKE) --no-print-directory -s print-dir DIR=HANDLERSDIR PREFIX=/usr); \
	    ini=$$tmp/etc/redwork/redwork.ini; \
	    [ "$$(readlink $$tmp$$libdir/libredwork.so.$(ABI))" = $(notdir $(LIB_SO)) ] || \
	        fail "$$libdir/libredwork.so.$(ABI) is not a link to $(notdir $(LIB_SO))"; \
	    grep -qx "handlers_dir = $$hd" $$ini || fail "$$ini does not say handlers_dir = $$hd"; \
	    cp handlers/echo.so $$tmp$$hd/mine.so; echo "# mine" >> $$ini; \
	    $(MAKE) --no-print-directory -s uninstall DESTDIR=$$tmp PREFIX=/usr >/dev/null; \
	    left=$$(cd $$tmp && find . ! -type d | sort | tr '\n' ' '); \
	    [ "$$left" = "./etc/redwork/redwork.ini .$$hd/mine.so " ] || \
	        fail "after uninstall, expected the operator's two files, found: $$left"; \
	    echo "install and uninstall: exact, for PREFIX=/usr and /usr/local; an operator's files kept"

# The Debian packages (debian/), built by dpkg-buildpackage -b in a clean
# clone of HEAD (uncommitted changes and this tree's build products stay
# out), checked by lintian, into build/deb/. scripts/deb-test.sh then tries
# them as an operator would (CI does both). Needs what make deps installs.
DEB_OUT := $(B)/deb

deb:
	$(Q)tmp=$$(mktemp -d /tmp/redwork-deb.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; set -e; \
	    git clone -q . "$$tmp/redwork"; \
	    (cd "$$tmp/redwork" && dpkg-buildpackage -us -uc -b) > "$$tmp/build.log" 2>&1 || \
	        { tail -n 40 "$$tmp/build.log"; exit 1; }; \
	    rm -rf $(DEB_OUT); mkdir -p $(DEB_OUT); \
	    mv "$$tmp"/*.deb "$$tmp"/*.changes "$$tmp"/*.buildinfo $(DEB_OUT)/; \
	    lintian --fail-on error,warning $(DEB_OUT)/*.changes; \
	    ls -l $(DEB_OUT)/*.deb

print-installed:
	@echo $(INSTALLED)

print-dir:
	@echo $($(DIR))

clean:
	rm -rf $(B) bin lib handlers/*.so

-include $(shell find $(B) -name '*.d' 2>/dev/null)
