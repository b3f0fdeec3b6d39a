# bench/compare's chart:
#   gnuplot -e "datafile='...'; outfile='...'; floods='1 3'; capped='1000k pps'; subtitle='...'" chart.gp
# datafile rows: contender, then for the floods one, capped and spoof in turn: ns/pkt median
# min max, client kept % median min max (NaN where not measured). floods: which to plot.
set terminal pngcairo size 1400,560 font "sans,10"
set output outfile
title_of(j) = j == 1 ? "one source" : j == 2 ? "one source at ".capped : "spoofed sources"
set multiplot layout 1,2 title "bpfgate against the alternatives (".subtitle.")"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -20 nomirror
set grid ytics
set key top left

set title "gateway CPU per flood packet (ns, median; bars: min-max; log scale)"
set logscale y
set yrange [10:*]
plot for [j in floods] datafile using (column(2 + (j - 1) * 6)):(column(3 + (j - 1) * 6)):(column(4 + (j - 1) * 6)):xtic(1) title title_of(j)

set title "legitimate client's requests/s under the flood (% of no flood)"
unset logscale y
set yrange [0:120]
plot for [j in floods] datafile using (column(5 + (j - 1) * 6)):(column(6 + (j - 1) * 6)):(column(7 + (j - 1) * 6)):xtic(1) title title_of(j), \
     90 with lines dt 2 lc rgb "black" title "target 90 %"
unset multiplot
