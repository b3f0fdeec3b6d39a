# bench/flood/run.sh's raw.csv (awk -F,) -> the results as Markdown tables: per scenario
# and client, the medians of the three modes and of bpfgate's share of the oracle's rate
# (per round, then the median); the newcomer's first request; bpfgate's maps. Portable
# awk (Debian's mawk has no asort). -v bound_secs=S: the long phase's length.
function sort(a, n,    i, j, t) {
  for (i = 2; i <= n; i++)
    for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
}
function median(a, n) {
  sort(a, n)
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# The median of column `col` over the rounds of scenario sc in mode m ("" when none).
function med(sc, m, col,    r, n, a) {
  n = 0
  for (r = 1; r <= R; r++)
    if ((sc, m, r) in row && V[sc, m, r, col] != "") a[++n] = V[sc, m, r, col] + 0
  return n ? median(a, n) : ""
}
function fmt(x, d) { return x == "" ? "-" : sprintf("%." d "f", x) }
# bpfgate's share of the oracle's rate for a client (its rate column): per round, then
# "median [min-max]", in per cent.
function share(sc, col,    r, n, a, lo, hi, m) {
  n = 0
  for (r = 1; r <= R; r++)
    if ((sc, "oracle", r) in row && (sc, "bpfgate", r) in row && V[sc, "oracle", r, col] > 0)
      a[++n] = 100 * V[sc, "bpfgate", r, col] / V[sc, "oracle", r, col]
  if (!n) return "-"
  m = median(a, n)
  return sprintf("**%.0f %%** [%.0f-%.0f]", m, a[1], a[n])
}
function newcomer(sc, m,    r, n, ok, a) {
  n = ok = 0
  for (r = 1; r <= R; r++) {
    if (!((sc, m, r) in row)) continue
    n++
    if (V[sc, m, r, 14] != "") a[++ok] = V[sc, m, r, 14] + 0
  }
  if (!n) return "-"
  return (ok ? sprintf("%.0f", median(a, ok)) : "none") " (" ok "/" n ")"
}
function known_list(sc,    r, s, sep) {  # "before->after" per round
  s = sep = ""
  for (r = 1; r <= R; r++)
    if ((sc, "bpfgate", r) in row) { s = s sep V[sc, "bpfgate", r, 21] "->" V[sc, "bpfgate", r, 22]; sep = ", " }
  return s
}
function lost(sc,    r, n) {  # rounds in which a client proven before the flood was not after it
  n = 0
  for (r = 1; r <= R; r++)
    if ((sc, "bpfgate", r) in row)
      n += (V[sc, "bpfgate", r, 23] == 1 && V[sc, "bpfgate", r, 24] != 1) + \
           (V[sc, "bpfgate", r, 25] == 1 && V[sc, "bpfgate", r, 26] != 1)
  return n
}
function proven(sc,    r, n, k) {  # client entries proven before the flood / expected
  n = k = 0
  for (r = 1; r <= R; r++)
    if ((sc, "bpfgate", r) in row) { n += 2; k += V[sc, "bpfgate", r, 23] + V[sc, "bpfgate", r, 25] }
  return k "/" n
}
function sum_col(sc, col,    r, x, n) {  # over the rounds where the column has a number
  x = n = 0
  for (r = 1; r <= R; r++)
    if ((sc, "bpfgate", r) in row && V[sc, "bpfgate", r, col] ~ /^[0-9]+$/) { x += V[sc, "bpfgate", r, col]; n++ }
  return n ? x : "-"
}
function max_col(sc, col,    r, x) {
  x = ""
  for (r = 1; r <= R; r++)
    if ((sc, "bpfgate", r) in row && (x == "" || V[sc, "bpfgate", r, col] + 0 > x)) x = V[sc, "bpfgate", r, col] + 0
  return x
}
NR == 1 { next }
{
  sc = $2 "-" $3
  r = $1 == "bound" ? "bound" : $1 + 0
  if (r != "bound" && r > R) R = r
  if (r == "bound") { for (i = 1; i <= NF; i++) B[i] = $i; has_bound = 1; next }
  if (!(sc in seen)) { seen[sc] = 1; order[++nsc] = sc }
  row[sc, $4, r] = 1
  for (i = 1; i <= NF; i++) V[sc, $4, r, i] = $i
}
END {
  print "### Clients' req/s (median of " R " rounds) and failed requests"
  print ""
  print "| scenario | client | no flood | oracle | bpfgate | bpfgate / oracle, median [min-max] | failed %: no flood / oracle / bpfgate |"
  print "|---|---|---|---|---|---|---|"
  for (i = 1; i <= nsc; i++) {
    sc = order[i]
    if (!((sc, "bpfgate", 1) in row) && !((sc, "none", 1) in row)) continue
    printf "| %s | keep | %s | %s | %s | %s | %s / %s / %s |\n", sc, fmt(med(sc, "none", 6), 0),
      fmt(med(sc, "oracle", 6), 0), fmt(med(sc, "bpfgate", 6), 0), share(sc, 6),
      fmt(med(sc, "none", 9), 2), fmt(med(sc, "oracle", 9), 2), fmt(med(sc, "bpfgate", 9), 2)
    printf "| %s | new | %s | %s | %s | %s | %s / %s / %s |\n", sc, fmt(med(sc, "none", 10), 0),
      fmt(med(sc, "oracle", 10), 0), fmt(med(sc, "bpfgate", 10), 0), share(sc, 10),
      fmt(med(sc, "none", 13), 2), fmt(med(sc, "oracle", 13), 2), fmt(med(sc, "bpfgate", 13), 2)
  }
  print ""
  print "### A never-seen client's first request, and the flood"
  print ""
  print "ms until its first request succeeded (median; rounds in which it did within the window)."
  print ""
  print "| scenario | newcomer: no flood | oracle | bpfgate | offered Mpps (oracle / bpfgate) | ring refused %: oracle / bpfgate | gateway NAPI busy %: none / oracle / bpfgate | gateway ns per frame taken in: oracle / bpfgate | flood SYNs that reached the listener, /s: oracle / bpfgate | frames taken in that XDP passed, %: oracle / bpfgate |"
  print "|---|---|---|---|---|---|---|---|---|---|"
  for (i = 1; i <= nsc; i++) {
    sc = order[i]
    printf "| %s | %s | %s | %s | %s / %s | %s / %s | %s / %s / %s | %s / %s | %s / %s | %s / %s |\n", sc, newcomer(sc, "none"),
      newcomer(sc, "oracle"), newcomer(sc, "bpfgate"), fmt(med(sc, "oracle", 15) / 1e6, 2),
      fmt(med(sc, "bpfgate", 15) / 1e6, 2), fmt(med(sc, "oracle", 17), 1), fmt(med(sc, "bpfgate", 17), 1),
      fmt(med(sc, "none", 27), 0), fmt(med(sc, "oracle", 27), 0), fmt(med(sc, "bpfgate", 27), 0),
      fmt(med(sc, "oracle", 28), 0), fmt(med(sc, "bpfgate", 28), 0),
      fmt(med(sc, "oracle", 31), 0), fmt(med(sc, "bpfgate", 31), 0),
      fmt(med(sc, "oracle", 33), 2), fmt(med(sc, "bpfgate", 33), 1)
  }
  print ""
  print "### bpfgate's maps (pin dir: sources = per-source LRU table, known = proven sources)"
  print ""
  print "| scenario | sources after the flood / bound (max over rounds) | known before->after, per round | clients proven before the flood | clients' proven entries lost | clients' frames dropped by bpfgate's buckets (keep / new, all rounds) |"
  print "|---|---|---|---|---|---|"
  for (i = 1; i <= nsc; i++) {
    sc = order[i]
    if (!((sc, "bpfgate", 1) in row)) continue
    printf "| %s | %s / %s | %s | %s | %d | %s / %s |\n", sc, max_col(sc, 19), max_col(sc, 20),
      known_list(sc), proven(sc), lost(sc), sum_col(sc, 29), sum_col(sc, 30)
  }
  if (has_bound) {
    print ""
    print "### The long phase: bpfgate under the " (B[2] == "v4" ? "IPv4" : "IPv6") " UDP flood until the per-source table is full"
    print ""
    print "| flood | keep req/s (failed %) | new req/s (failed %) | newcomer ms | sources before -> after / bound | known before -> after | keep, new known before -> after | their frames dropped by bpfgate |"
    print "|---|---|---|---|---|---|---|---|"
    printf "| %s-%s, %s s (the last %.0f s measured) | %.0f (%.2f) | %.0f (%.2f) | %s | %s -> %s / %s | %s -> %s | %s,%s -> %s,%s | %s / %s |\n",
      B[2], B[3], bound_secs, B[5], B[6], B[9], B[10], B[13], B[14] == "" ? "none" : B[14], B[18], B[19], B[20],
      B[21], B[22], B[23], B[25], B[24], B[26], B[29], B[30]
  }
}
