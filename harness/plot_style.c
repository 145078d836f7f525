/* plot_style.c: fixed colour and point type per mixer, dash types within a mixer. */
#include "plot_style.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Okabe & Ito (2008) without its yellow, which is too faint for lines on white. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};
enum { BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, BLACK, N_COLORS };

/* The mixers compared most often (Grazzi et al., Zoology) get distinct
 * colours and filled points; the others reuse a colour with another point,
 * chosen so that the mixers of each paper config (configs/papers/) differ
 * in colour: Deletang's elman / lstm / attention, Zoology's and RegBench's
 * attention / linear_attn / mamba / deltanet / gla / retnet / lstm. */
static const struct {
    const char *mixer;
    int color, point;
} mixer_styles[] = {
    {"deltanet", BLUE, 7},        {"mamba", VERMILLION, 5},  {"lstm", GREEN, 9},        {"attention", BLACK, 13},
    {"mlstm", PURPLE, 11},        {"slstm", ORANGE, 15},     {"mamba2", SKY, 7},        {"gated_deltanet", BLUE, 6},
    {"gla", SKY, 4},              {"gru", GREEN, 8},         {"retnet", PURPLE, 10},    {"linear_attn", ORANGE, 12},
    {"hgrn", SKY, 14},            {"elman", SKY, 6},         {"mingru", BLUE, 2},       {"minlstm", VERMILLION, 1},
    {"lru", PURPLE, 3},           {"s4d", ORANGE, 2},
};

#define N_DASHES 5 /* gnuplot's solid, dashed, dotted, dash-dot, dash-dot-dot */

static uint32_t fnv1a(const char *text)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

void plot_mixer_style(const char *mixer, char color[8], int *point)
{
    for (size_t i = 0; i < sizeof mixer_styles / sizeof mixer_styles[0]; i++)
        if (mixer && !strcmp(mixer, mixer_styles[i].mixer)) {
            snprintf(color, 8, "%s", palette[mixer_styles[i].color]);
            *point = mixer_styles[i].point;
            return;
        }
    snprintf(color, 8, "%s", palette[fnv1a(mixer ? mixer : "") % N_COLORS]);
    *point = 3;
}

void plot_styles(const char *const *labels, const char *const *mixers, int count, plot_line *out)
{
    for (int i = 0; i < count; i++) {
        int rank = 0;
        for (int j = 0; j < i; j++)
            rank += mixers[i] ? mixers[j] && !strcmp(mixers[i], mixers[j]) : !mixers[j];
        out[i].dash = 1 + rank % N_DASHES;
        if (mixers[i]) {
            plot_mixer_style(mixers[i], out[i].color, &out[i].point);
        } else {
            snprintf(out[i].color, sizeof out[i].color, "%s", palette[fnv1a(labels[i]) % N_COLORS]);
            out[i].point = 3;
        }
    }
}
