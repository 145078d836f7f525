# heatmap.gp: task x group of the metric averaged over a length range, each cell annotated with its value.
# Filled in by `statebench plot DB --kind heatmap`; each .dat file it writes starts with the command that replots it.
# Variables (gnuplot -e "..."):
#   style, datafile, outfile, term   plots/style.gp, the data, the figure, png | pdf | svg;
#                                    index 0: col row value seeds [best]; index 1: missing cells, col row
#   plot_title                       title (it names the metric the colours show)
#   nrows; rowlabels[i]              the tasks, top to bottom
#   ncols; collabels[j]              the groups, left to right, drawn one word per line
#   maxword, maxlines                the longest word of a column label, the most words in one
#   cbmin, cbmax                     colour range (accuracies: 0 to 1, so figures compare)
#   nmissing                         number of rows in index 1

if (!exists("datafile") || !exists("outfile") || !exists("nrows") || !exists("ncols") || !exists("style")) {
    print "heatmap.gp: set style, datafile, outfile, nrows, rowlabels, ncols, collabels, cbmin, cbmax with -e (see the header)"
    exit status 2
}
if (!exists("plot_title")) plot_title = ""
if (!exists("nmissing")) nmissing = 0
if (!exists("maxword")) maxword = 12
if (!exists("maxlines")) maxlines = 2
# a column is as wide as its longest word, at least 0.7 in; a row is 0.4 in; below the cells
# maxlines lines of column labels (0.17 in each, about a line of the 12-pixel or 9-point font)
if (!exists("fig_w")) fig_w = 2.4 + ncols * (maxword * 0.065 + 0.15 > 0.7 ? maxword * 0.065 + 0.15 : 0.7)
if (!exists("fig_h")) fig_h = 0.9 + 0.4 * nrows + 0.17 * (maxlines + 1.5)
if (fig_w < 4.5) fig_w = 4.5
# a title wider than the figure goes on two lines, broken after "EXPERIMENT:", and
# the figure widens to its longer line (about 0.085 in a character, 0.8 in of margins)
title_break = strstrt(plot_title, ": ")
if (strlen(plot_title) * 0.085 + 0.8 > fig_w && title_break > 0) {
    title_text = plot_title[1:title_break] . "\n" . plot_title[title_break + 2:]
    title_len = strlen(plot_title) - title_break - 1 > title_break ? strlen(plot_title) - title_break - 1 : title_break
    fig_h = fig_h + 0.2
} else {
    title_text = plot_title
    title_len = strlen(plot_title)
}
if (title_len * 0.085 + 0.8 > fig_w) fig_w = title_len * 0.085 + 0.8
load style
wrap(s) = strstrt(s, " ") ? s[1:strstrt(s, " ") - 1] . "\n" . wrap(s[strstrt(s, " ") + 1:]) : s

set title title_text
unset key
unset grid
set border 0
set tics scale 0
set xrange [-0.5 : ncols - 0.5]
set yrange [nrows - 0.5 : -0.5]
set xtics () noenhanced font f_key
set bmargin maxlines + 1.5
set ytics () noenhanced
set for [j=1:ncols] xtics add (wrap(collabels[j]) j - 1)
set for [i=1:nrows] ytics add (rowlabels[i] i - 1)
set cbrange [cbmin : cbmax]
set cbtics out nomirror scale 0.6
if (cbmin == 0 && cbmax == 1) { if (nrows < 4) { set cbtics 0, 0.5, 1 } else { set cbtics 0, 0.25, 1 } }
set rmargin 10
set colorbox user origin graph 1.03, graph 0 size character 1.5, graph 1
# viridis: perceptually uniform and colour-blind safe; light cells get dark text
set palette defined (0 "#440154", 0.25 "#3b528b", 0.5 "#21918c", 0.75 "#5ec962", 1 "#fde725")
frac(v) = (v - cbmin) / (cbmax - cbmin)
ink(v) = frac(v) > 0.6 ? 0x000000 : 0xffffff
cell_text(v) = abs(v) < 0.005 ? "0.00" : sprintf("%.2f", v)   # no "-0.00"

if (nmissing > 0) {
    plot datafile index 0 using 1:2:(0.5):(0.5):3 with boxxyerror lw 2 fc palette fs solid 1 border rgb "white", \
         datafile index 0 using 1:2:(cell_text($3)):(ink($3)) with labels tc rgb variable font f_key, \
         datafile index 1 using 1:2:(0.5):(0.5) with boxxyerror lw 2 fc rgb "#f2f2f2" fs solid 1 border rgb "white", \
         datafile index 1 using 1:2:("n/a") with labels tc rgb "#999999" font f_small
} else {
    plot datafile index 0 using 1:2:(0.5):(0.5):3 with boxxyerror lw 2 fc palette fs solid 1 border rgb "white", \
         datafile index 0 using 1:2:(cell_text($3)):(ink($3)) with labels tc rgb variable font f_key
}
