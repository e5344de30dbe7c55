# Plots kube_proxy_bench --dat output: connect latency (p50, p99) to the last
# programmed ClusterIP and the time to program, against the number of
# services, one line per mode.
#   gnuplot -e "dat='kube_proxy.dat'; out='kube_proxy.png'; modes='iptables-legacy tendril'" test/bench/plot.gp
set terminal pngcairo size 1500,480 font ",10" noenhanced
set output out
set datafile missing "NaN"
set logscale x 10
set xlabel "services"
set grid
set logscale y 10
set key top left
set multiplot layout 1,3 title "tendril vs kube-proxy, one 2-vCPU node (namespaces); lower is better"
set ylabel "connect p50 (us)"
set title "new connection to the last ClusterIP, p50"
plot for [i=1:words(modes)] dat using 1:(column(2+3*(i-1))) with linespoints title word(modes,i)
set ylabel "connect p99 (us)"
set title "p99"
plot for [i=1:words(modes)] dat using 1:(column(3+3*(i-1))) with linespoints title word(modes,i)
set ylabel "seconds"
set title "time to program S services from nothing"
plot for [i=1:words(modes)] dat using 1:(column(4+3*(i-1))) with linespoints title word(modes,i)
unset multiplot
