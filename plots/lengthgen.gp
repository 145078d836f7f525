# lengthgen.gp: length generalisation, the metric vs eval length n per group (mean line, min-max band over seeds).
# Filled in by `statebench plot DB --kind lengthgen`; each .dat file it writes starts with the command that replots it.
# Variables (gnuplot -e "..."):
#   style, datafile, outfile, term   plots/style.gp, the data (one index block per group:
#                                    n mean min max seeds [best]), the figure, png | pdf | svg
#   plot_title, ylabel_text          title and y label (drawn without enhanced-text markup)
#   ymin, ymax                       y range (ymax <= ymin: autoscale); chance = 1: a dashed line at 0
#   ngroups; labels[i], colors[i] ('#rrggbb'), dashes[i], points[i] for i = 1..ngroups
#   train_lo, train_hi               training length range to shade (train_hi = 0: none)
#   xmin, xmax                       x range (the eval lengths and up to two octaves of the training range)
#   xlabel_text                      x label (default "sequence length n"; plot --x FIELD puts FIELD there)
#   xlog                             1 (default): log2 x axis; 0: linear with integer tics (plot --x over a small range)

if (!exists("datafile") || !exists("outfile") || !exists("ngroups") || !exists("style")) {
    print "lengthgen.gp: set style, datafile, outfile, ngroups, labels, colors, dashes and points with -e (see the header)"
    exit status 2
}
if (!exists("plot_title")) plot_title = ""
if (!exists("ylabel_text")) ylabel_text = "scaled accuracy"
if (!exists("ymin")) ymin = -0.05
if (!exists("ymax")) ymax = 1.05
if (!exists("chance")) chance = 1
if (!exists("train_lo")) train_lo = 0
if (!exists("train_hi")) train_hi = 0
if (!exists("xlabel_text")) xlabel_text = "sequence length n"
load style

set title plot_title
set xlabel xlabel_text noenhanced
set ylabel ylabel_text noenhanced
if (!exists("xlog")) xlog = 1
set format x "%g"
if (xlog) {
    set logscale x 2
    set xrange [xmin / 1.15 : xmax * 1.15]
} else {
    set xtics 1
    set xrange [xmin - 0.5 : xmax + 0.5]
}
if (ymax > ymin) {
    set yrange [ymin : ymax]
    if (ymin >= -1 && ymax < 1.1) { set ytics -1, 0.25, 1 }
}

# training range, drawn behind everything
if (train_hi > 0) {
    set object 1 rect from train_lo, graph 0 to train_hi, graph 1 behind fc rgb "#e8e8e8" fs solid 1 noborder
    shown_lo = train_lo > xmin / 1.15 ? train_lo : xmin / 1.15
    # the label sits just above the axes, over the band, where no data can run through it
    band_mid = xlog ? sqrt(shown_lo * train_hi) : (shown_lo + train_hi) / 2.0
    set label 1 "training lengths" at band_mid, graph 1 center offset 0, 0.55 font f_small tc rgb "#777777"
}
if (chance) {
    set arrow 1 from graph 0, first 0 to graph 1, first 0 nohead dt 2 lc rgb "#777777" lw 1 back
    # beside the axes, on the right: inside them it would sit on data near chance
    set label 2 "chance" at graph 1.01, first 0 left front font f_small tc rgb "#777777"
}

plot for [i=1:ngroups] datafile index (i - 1) using 1:3:4 with filledcurves \
         fc rgb colors[i] fs transparent solid 0.15 noborder notitle, \
     for [i=1:ngroups] datafile index (i - 1) using 1:2 with linespoints \
         lc rgb colors[i] dt dashes[i] lw 2 pt points[i] ps point_size title labels[i]
