# The chart of bench/chart.lua: four panels (put, get, range of 100, scan
# per record), microseconds per operation against the collection's size,
# both axes logarithmic. Variables (gnuplot -e): data (the folder of
# put.dat, get.dat, range.dat, scan.dat), out (the SVG), conditions (a
# line saying when and where it was measured), n (the engines' columns).
set terminal svg size 1000,800 dynamic font "sans,12" background "white"
set output out
set logscale xy
set xrange [700:140000]
set xtics ("1k" 1000, "10k" 10000, "100k" 100000)
set format y "%g"
set grid xtics ytics mytics lc rgb "#dddddd"
set key below horizontal maxcols 4 font "sans,10" noautotitle
set style data linespoints
set linetype 1 lc rgb "#1f77b4" lw 2 pt 7
set linetype 2 lc rgb "#2ca02c" lw 2 pt 5
set linetype 3 lc rgb "#9467bd" lw 2 pt 9
set linetype 4 lc rgb "#d62728" lw 2 pt 13
set multiplot layout 2,2 title "mydb: microseconds per operation against collection size (lower is better)\n{/*0.8 ".conditions."}"
set xlabel "records in the collection"
set ylabel "us per put"
set title "put one record (fsync off; SQLite synchronous=OFF)"
plot for [i=2:n+1] data."/put.dat" using 1:i title columnheader(i)
set ylabel "us per get"
set title "point get of a random key"
plot for [i=2:n+1] data."/get.dat" using 1:i title columnheader(i)
set ylabel "us per range"
set title "range query: from + limit 100"
plot for [i=2:n+1] data."/range.dat" using 1:i title columnheader(i)
set ylabel "us per record"
set title "full scan, per record"
plot for [i=2:n+1] data."/scan.dat" using 1:i title columnheader(i)
unset multiplot
