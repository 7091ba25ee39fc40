/* gen_ini_man.c -- writes redwork.ini(5) from the parser's own key table.
 *
 *     gen_ini_man KEYS TEMPLATE > redwork.ini.5
 *     gen_ini_man --check KEYS
 *
 * The type, bounds, default and choices of each fixed key come from
 * redwork_config_key_describe() (common/config.h), the table the parser
 * reads the file with, so the page cannot say what the parser does not
 * do. What each key means is prose, written by hand in KEYS
 * (man/redwork.ini.keys): an entry is a header line "[section] key" (or
 * "[section]" alone, for the section's introduction) and the roff lines
 * under it; a blank line inside an entry starts a new paragraph;
 * lines starting with '#' are comments. A table key with no entry, an
 * entry for a key the table lacks, and an entry given twice are errors,
 * each named: the page is never written with a key missing.
 *
 * TEMPLATE is the page around the keys: "@VERSION@" in it becomes the
 * version, and a line "@KEYS@" becomes one .SS per section with a .TP per
 * key. Exit status: 0, 1 on any error (the page on stdout is then
 * incomplete: the Makefile writes it to a temporary file first), 64 on a
 * bad command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#ifndef REDWORK_VERSION
#define REDWORK_VERSION "unknown"
#endif

/* One entry of the KEYS file. */
typedef struct entry {
    char section[64];
    char name[64];  /* "" for a section's introduction */
    int line;       /* of its header */
    char *text;     /* its roff lines, each ending in '\n' */
    size_t len;
    int used;       /* matched by a table key or section, or a repeat */
} entry;

typedef struct keys_file {
    const char *path;
    entry *items;
    size_t count;
} keys_file;

/* Appends the N bytes at S to E's text. Returns 0, or -1 out of memory. */
static int text_append(entry *e, const char *s, size_t n) {
    char *grown = realloc(e->text, e->len + n + 1);
    if (grown == NULL)
        return -1;
    memcpy(grown + e->len, s, n);
    e->len += n;
    grown[e->len] = '\0';
    e->text = grown;
    return 0;
}

static int blank(const char *s) { return s[strspn(s, " \t\r\n")] == '\0'; }

/* Parses a header line "[section]" or "[section] key" into E. Returns 1
 * if LINE is a header, 0 if it is not, -1 if it is a malformed one. */
static int parse_header(const char *line, entry *e) {
    if (line[0] != '[')
        return 0;
    const char *close = strchr(line, ']');
    if (close == NULL || close - line - 1 <= 0 || (size_t)(close - line - 1) >= sizeof e->section)
        return -1;
    snprintf(e->section, sizeof e->section, "%.*s", (int)(close - line - 1), line + 1);
    const char *name = close + 1 + strspn(close + 1, " \t");
    size_t n = strcspn(name, " \t\r\n");
    if (n >= sizeof e->name || !blank(name + n))
        return -1;
    snprintf(e->name, sizeof e->name, "%.*s", (int)n, name);
    return 1;
}

/* Reads PATH into KF. Returns the number of errors (printed), or -1 if
 * PATH cannot be read at all. */
static int keys_read(keys_file *kf, const char *path) {
    kf->path = path;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char line[4096];
    int lineno = 0, errors = 0;
    entry *cur = NULL;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "%s:%d: line longer than %zu characters\n", path, lineno,
                    sizeof line - 2);
            errors++;
            break;
        }
        if (line[0] == '#')
            continue;
        entry e = {.line = lineno};
        int header = parse_header(line, &e);
        if (header < 0) {
            fprintf(stderr, "%s:%d: a header is \"[section] key\" or \"[section]\"\n", path,
                    lineno);
            errors++;
            continue;
        }
        if (header > 0) {
            for (size_t i = 0; i < kf->count && !e.used; i++)
                if (strcmp(kf->items[i].section, e.section) == 0 &&
                    strcmp(kf->items[i].name, e.name) == 0) {
                    fprintf(stderr, "%s:%d: [%s]%s%s: described twice (first on line %d)\n",
                            path, lineno, e.section, *e.name ? " " : "", e.name,
                            kf->items[i].line);
                    errors++;
                    e.used = 1; /* reported: not again as a key the table lacks */
                }
            entry *grown = realloc(kf->items, (kf->count + 1) * sizeof *grown);
            if (grown == NULL) {
                fprintf(stderr, "%s: out of memory\n", path);
                errors++;
                break;
            }
            kf->items = grown;
            cur = &kf->items[kf->count++];
            *cur = e;
            continue;
        }
        if (cur == NULL) {
            if (!blank(line)) {
                fprintf(stderr, "%s:%d: text before the first \"[section] key\" header\n",
                        path, lineno);
                errors++;
            }
            continue;
        }
        /* A blank line is kept as an empty one: put_text() makes a new
         * paragraph of it. */
        if (text_append(cur, blank(line) ? "\n" : line, blank(line) ? 1 : strlen(line)) != 0) {
            fprintf(stderr, "%s: out of memory\n", path);
            errors++;
            break;
        }
    }
    fclose(f);
    return errors;
}

/* The entry for SECTION and NAME ("" for the section's introduction), or
 * NULL. */
static entry *keys_find(keys_file *kf, const char *section, const char *name) {
    for (size_t i = 0; i < kf->count; i++)
        if (strcmp(kf->items[i].section, section) == 0 && strcmp(kf->items[i].name, name) == 0)
            return &kf->items[i];
    return NULL;
}

/* 1 if the table has a key in SECTION. */
static int table_has_section(const char *section) {
    config_key_info k;
    for (size_t i = 0; redwork_config_key_describe(i, &k) == 0; i++)
        if (strcmp(k.section, section) == 0)
            return 1;
    return 0;
}

/* Matches the table against KF both ways. Returns the number of errors
 * (printed, each naming the key). */
static int keys_check(keys_file *kf) {
    int errors = 0;
    config_key_info k;
    for (size_t i = 0; redwork_config_key_describe(i, &k) == 0; i++) {
        entry *e = keys_find(kf, k.section, k.name);
        if (e == NULL || blank(e->text != NULL ? e->text : "")) {
            fprintf(stderr, "%s: [%s] %s: the config table (common/config.c) has this key "
                    "but %s\n", kf->path, k.section, k.name,
                    e == NULL ? "it has no description here" : "its description is empty");
            errors++;
        }
        if (e != NULL)
            e->used = 1;
        if ((e = keys_find(kf, k.section, "")) != NULL)
            e->used = 1;
    }
    for (size_t i = 0; i < kf->count; i++) {
        const entry *e = &kf->items[i];
        if (e->used)
            continue;
        if (*e->name == '\0')
            fprintf(stderr, "%s:%d: [%s]: the config table (common/config.c) has no such "
                    "section\n", kf->path, e->line, e->section);
        else
            fprintf(stderr, "%s:%d: [%s] %s: the config table (common/config.c) has no such "
                    "key%s\n", kf->path, e->line, e->section, e->name,
                    table_has_section(e->section) ? "" : " (nor section)");
        errors++;
    }
    return errors;
}

/* Writes S for roff: a backslash as \e and a hyphen as \- (these are
 * literal strings: keys, defaults, choices). */
static void put_escaped(const char *s, FILE *out) {
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

/* The line under a key's name: its type, bounds or choices, and default. */
static void put_type_line(const config_key_info *k, FILE *out) {
    if (strcmp(k->type, "integer") == 0) {
        fprintf(out, "Integer, %lld to %lld.", k->min, k->max);
    } else if (strcmp(k->type, "boolean") == 0) {
        fputs("Boolean.", out);
    } else if (strcmp(k->type, "enum") == 0) {
        fputs("One of", out);
        const char *c = k->choices;
        while (*c != '\0') {
            size_t n = strcspn(c, ",");
            fputs(" \\fB", out);
            char word[64];
            snprintf(word, sizeof word, "%.*s", (int)n, c);
            put_escaped(word, out);
            fputs("\\fR", out);
            c += n;
            if (*c == ',') {
                c += strspn(c, ", ");
                fputs(*c != '\0' && strchr(c, ',') == NULL ? " or" : ",", out);
            }
        }
        fputs(".", out);
    } else if (k->max > 0) {
        fprintf(out, "String of at most %lld characters.", k->max);
    } else {
        fputs("String.", out);
    }
    if (*k->def == '\0') {
        fputs(" Default: empty.\n", out);
    } else {
        fputs(" Default: \\fB", out);
        put_escaped(k->def, out);
        fputs("\\fR.\n", out);
    }
}

/* Writes E's text without the blank lines at its ends; a blank line
 * inside it becomes PARAGRAPH (".IP" under a key, ".PP" in a section's
 * introduction). */
static void put_text(const entry *e, const char *paragraph, FILE *out) {
    const char *p = e->text != NULL ? e->text : "";
    while (*p == '\n')
        p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '\n')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n') { /* i + 1 < n: p[n - 1] is not one */
            fprintf(out, "\n%s", paragraph);
            while (p[i + 1] == '\n')
                i++;
        }
        fputc(p[i], out);
    }
    if (n > 0)
        fputc('\n', out);
}

/* The fixed keys: a .SS per section, in the table's order, and a .TP per
 * key. */
static void put_keys(keys_file *kf, FILE *out) {
    config_key_info k;
    char section[64] = "";
    for (size_t i = 0; redwork_config_key_describe(i, &k) == 0; i++) {
        if (strcmp(k.section, section) != 0) {
            snprintf(section, sizeof section, "%s", k.section);
            fprintf(out, ".SS [%s]\n", section);
            const entry *intro = keys_find(kf, section, "");
            if (intro != NULL) {
                fputs(".PP\n", out);
                put_text(intro, ".PP", out);
            }
        }
        fputs(".TP\n.B ", out);
        put_escaped(k.name, out);
        fputc('\n', out);
        put_type_line(&k, out);
        fputs(".br\n", out);
        put_text(keys_find(kf, k.section, k.name), ".IP", out);
    }
}

/* Copies TEMPLATE to OUT with @VERSION@ and the @KEYS@ line replaced.
 * Returns 0, or -1 (printed). */
static int put_page(const char *template_path, keys_file *kf, FILE *out) {
    FILE *f = fopen(template_path, "r");
    if (f == NULL) {
        perror(template_path);
        return -1;
    }
    char line[4096];
    int keys_done = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strcmp(line, "@KEYS@\n") == 0) {
            put_keys(kf, out);
            keys_done++;
            continue;
        }
        for (char *p = line, *at; *p != '\0'; p = at + strlen("@VERSION@")) {
            if ((at = strstr(p, "@VERSION@")) == NULL) {
                fputs(p, out);
                break;
            }
            fprintf(out, "%.*s%s", (int)(at - p), p, REDWORK_VERSION);
        }
    }
    fclose(f);
    if (keys_done != 1) {
        fprintf(stderr, "%s: needs one line \"@KEYS@\", has %d\n", template_path, keys_done);
        return -1;
    }
    return 0;
}

static void keys_free(keys_file *kf) {
    for (size_t i = 0; i < kf->count; i++)
        free(kf->items[i].text);
    free(kf->items);
}

int main(int argc, char **argv) {
    int check = argc == 3 && strcmp(argv[1], "--check") == 0;
    if (!check && argc != 3) {
        fprintf(stderr, "usage: gen_ini_man KEYS TEMPLATE > redwork.ini.5\n"
                        "       gen_ini_man --check KEYS\n");
        return 64;
    }
    keys_file kf = {0};
    const char *keys_path = check ? argv[2] : argv[1];
    int errors = keys_read(&kf, keys_path);
    if (errors >= 0) /* every mistake at once, not one per run */
        errors += keys_check(&kf);
    else
        errors = 1;
    if (errors == 0 && !check && put_page(argv[2], &kf, stdout) != 0)
        errors++;
    if (errors == 0 && fflush(stdout) != 0) {
        perror("gen_ini_man: stdout");
        errors++;
    }
    keys_free(&kf);
    if (errors > 0)
        fprintf(stderr, "gen_ini_man: %s: %d error%s\n", keys_path, errors,
                errors == 1 ? "" : "s");
    return errors > 0 ? 1 : 0;
}
