#!/bin/sh
# Plots the pretraining learning curve (results/pretrain-curve.csv, written by `make base`)
# into results/pretrain-curve.png with gnuplot: validation loss on a log scale, and the greedy
# exact-match on new sentence frames (in no training file) of the control verbs, the held-out
# regular verbs, the irregulars' non-past forms and their past forms (the default --curve-data).
set -eu
cd "$(dirname "$0")/.."
csv=${1:-results/pretrain-curve.csv}
png=${2:-results/pretrain-curve.png}
command -v gnuplot >/dev/null || { echo "plot-curve.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
gnuplot <<GP
set terminal pngcairo size 900,600 font ',11' noenhanced
set output '$png'
set datafile separator ','
set title 'Pretraining Mini-GPT (make base): loss and greedy exact match'
set xlabel 'step (batch 64)'
set ylabel 'exact match (%)'
set y2label 'validation loss (log scale)'
set logscale y2
set y2tics
set ytics nomirror
set yrange [0:105]
set key below
set grid
plot '$csv' every ::1 using 1:(100*\$4) with linespoints lw 2 pt 7 title 'control verbs, past (new frames)', \
     '' every ::1 using 1:(100*\$5) with linespoints lw 2 pt 5 title 'held-out regular verbs, past (never seen, new frames)', \
     '' every ::1 using 1:(100*\$6) with linespoints lw 2 pt 13 title 'the 8 irregulars, non-past forms (new frames)', \
     '' every ::1 using 1:(100*\$7) with linespoints lw 2 pt 9 title 'the 8 irregulars, correct past form (new frames)', \
     '' every ::1 using 1:3 axes x1y2 with lines dt 2 lw 2 lc rgb '#555555' title 'validation loss (right axis)'
GP
echo "plot-curve.sh: wrote $png"
