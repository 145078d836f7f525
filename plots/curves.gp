# curves.gp: training loss (top, log scale when it spans a decade) and training token accuracy (bottom) vs step, one line per group.
# Filled in by `statebench plot DB --kind curves`; each .dat file it writes starts with the command that replots it.
# Variables (gnuplot -e "..."):
#   style, datafile, outfile, term   plots/style.gp, the data (one index block per group:
#                                    step loss acc runs, means over the group's runs), the figure, png | pdf | svg
#   plot_title                       title
#   max_step                         the last step (x tics at a round fifth or so of it)
#   ngroups, maxlabel; labels[i], colors[i] ('#rrggbb'), dashes[i], points[i] for i = 1..ngroups

if (!exists("datafile") || !exists("outfile") || !exists("ngroups") || !exists("style")) {
    print "curves.gp: set style, datafile, outfile, ngroups, labels, colors, dashes and points with -e (see the header)"
    exit status 2
}
if (!exists("plot_title")) plot_title = ""
if (!exists("maxlabel")) maxlabel = 24
if (!exists("max_step")) max_step = 1000
if (!exists("fig_h")) fig_h = 5.0
if (!exists("plot_w")) plot_w = 5.0
load style

raw_step = max_step / 4.0
magnitude = 10 ** floor(log10(raw_step))
ratio = raw_step / magnitude
xstep = ratio < 1.5 ? magnitude : ratio < 3.5 ? 2 * magnitude : ratio < 7.5 ? 5 * magnitude : 10 * magnitude
set xtics 0, xstep
set xrange [0 : *]

left = 0.8 / fig_w
right = 1 - key_room - 0.02
top = 1 - 0.55 / fig_h
bottom = 0.6 / fig_h
middle = (top + bottom) / 2
gap = 0.15 / fig_h

set multiplot title plot_title noenhanced font f_title
set lmargin at screen left
set rmargin at screen right
set key at screen right + 0.02, screen top left top

set tmargin at screen top
set bmargin at screen middle + gap
# a log scale when the loss spans a decade or more; within one decade a log axis
# would show one or two labels, so the axis is linear then
stats datafile using 2 nooutput
loss_span = STATS_min > 0 ? STATS_max / STATS_min : 100
if (loss_span >= 10) {
    set logscale y
    set format y "10^{%L}"
} else {
    set format y "%g"
}
set ylabel "training loss"
set format x ""
plot for [i=1:ngroups] datafile index (i - 1) using 1:2 with lines lc rgb colors[i] dt dashes[i] lw 1.5 title labels[i]

unset key
unset logscale y
set tmargin at screen middle - gap
set bmargin at screen bottom
set format x "%g"
set format y "%g"
set xlabel "training step"
set ylabel "training accuracy"
set yrange [0 : 1.02]
set ytics 0, 0.25, 1
plot for [i=1:ngroups] datafile index (i - 1) using 1:3 with lines lc rgb colors[i] dt dashes[i] lw 1.5 notitle
unset multiplot
