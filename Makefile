# bulk-import — FHIR Bulk Data Import (ping and pull) in C.
# `make run` and `make test` are the two commands a user needs.

PREFIX   ?= /usr/local
DESTDIR  ?=
PORT     ?= 8080
CC       ?= cc
BUILD    ?= build
export BUILD

PKGS     := libcurl json-c openssl libjwt libpq fcgi
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CS_CFLAGS  := -I/usr/include/ClearSilver
CS_LIBS    := -lneo_cgi -lneo_cs -lneo_utl -lz

WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -D_GNU_SOURCE -MMD -MP -Ilib $(PKG_CFLAGS) $(CS_CFLAGS)
LDLIBS   := $(PKG_LIBS) $(CS_LIBS) -lpthread -lm
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC    := $(wildcard lib/*.c)
CGI_SRC    := $(wildcard cgi-bin/*.c)
WORKER_SRC := $(wildcard worker/*.c)
CLI_TOOLS  := $(notdir $(wildcard cli/*))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
san = $(patsubst %.c,$(BUILD)/san/%.o,$(1))

LIB_A      := $(BUILD)/libbulk.a
LIB_SAN_A  := $(BUILD)/libbulk-san.a
FCGI_BIN   := $(BUILD)/bin/bulk-import.fcgi
WORKER_BIN := $(BUILD)/bin/bulk-import-worker
CLI_BINS   := $(addprefix $(BUILD)/bin/,$(CLI_TOOLS))
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

.PHONY: all deps run start stop test unit integration install clean bench doc-config
all: $(FCGI_BIN) $(WORKER_BIN) $(CLI_BINS)

deps:
	@sh scripts/deps.sh

# V=1 shows full command lines
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC-SAN  $<")
	$(Q)$(CC) $(ALL_CFLAGS) -O1 $(SAN) -c -o $@ $<

$(LIB_A): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SAN_A): $(call san,$(LIB_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FCGI_BIN): $(call obj,$(CGI_SRC)) $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(WORKER_BIN): $(call obj,$(WORKER_SRC)) $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.SECONDEXPANSION:
$(BUILD)/bin/%: $$(call obj,$$(wildcard cli/%/*.c)) $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit/%: $(BUILD)/san/tests/unit/%.o $(LIB_SAN_A)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD-SAN  $@")
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BINS)
	@sh tests/run-unit.sh $(UNIT_BINS)

run: deps all
	@sh scripts/services.sh run var $(PORT)

start: deps all
	@sh scripts/services.sh start var $(PORT)
	@sh scripts/services.sh banner var $(PORT)

stop:
	@sh scripts/services.sh stop var

test: deps all $(UNIT_BINS)
	@sh tests/run-all.sh $(UNIT_BINS)

bench: all
	@sh bench/run.sh

doc-config: $(BUILD)/bin/bulk-import-config
	@sh scripts/config-doc.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/bulk-import/cgi-bin \
	  $(DESTDIR)$(PREFIX)/share/bulk-import
	install -m 755 $(WORKER_BIN) $(CLI_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(FCGI_BIN) $(DESTDIR)$(PREFIX)/lib/bulk-import/cgi-bin/
	cp -R templates static sql apache $(DESTDIR)$(PREFIX)/share/bulk-import/
	install -d $(DESTDIR)$(PREFIX)/share/bulk-import/scripts
	install -m 755 scripts/migrate.sh $(DESTDIR)$(PREFIX)/share/bulk-import/scripts/

clean:
	rm -rf $(BUILD)

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
