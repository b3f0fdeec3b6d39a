#!/usr/bin/awk -f
# Summarizes bench/compare's raw.csv (one row per round, contender and flood):
# min / median / max over the rounds, and ratios to bpfgate taken within each
# round (the same minute, the same load), then their median. Prints the table;
# writes summary.csv (-v summary=), chart data (-v chartdata=) and JSON lines
# (-v jsonfile=). Portable awk (Debian's mawk has no asort).
BEGIN {
  FS = ","
  order = "none floor bpfgate iptables nftables xdp-filter"
  nwho = split(order, WHO, " ")
  nfl = split("one capped spoof", FLOOD, " ")
  nm = split("offered_pps in_pps refused_pps dropped_pps drop_pct ns_per_pkt drops_per_cpu_s napi_util_pct cpu0_busy_pct cpu1_busy_pct req_s p50_ms p99_ms errors kept_pct map_entries map_max maps_memlock tool_dropped_pps udp_csum_errors", M, " ")
  LABEL["one"] = "one source: 64-byte UDP/IPv4 from 198.18.0.66, as fast as the generator goes"
  LABEL["capped"] = "one source, capped: 64-byte UDP/IPv4 from 198.18.0.66 at " (capped_rate / 1e6) " Mpps"
  LABEL["spoof"] = "spoofed sources: 64-byte UDP/IPv6 from random addresses in 2001:db8:8000::/33"
}
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
  run = $col["run"]; who = $col["contender"]; fl = $col["flood"]
  runs[run] = 1
  key = who SUBSEP fl
  seen[key] = 1
  for (i = 1; i <= nm; i++) {
    m = M[i]
    if (m == "kept_pct") continue
    if ((m in col) && $col[m] != "" && $col[m] != "nan") val[key, m, run] = $col[m] + 0
  }
  if (fl == "none") base[run] = $col["req_s"] + 0
}

function sort(a, n,    i, j, t) {
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
}
# Fills S[key, m, "min"|"med"|"max"|"n"] from the values of all rounds.
function stats(key, m,    r, n, a) {
  n = 0
  for (r in runs) if ((key, m, r) in val) a[++n] = val[key, m, r]
  S[key, m, "n"] = n
  if (!n) return
  sort(a, n)
  S[key, m, "min"] = a[1]; S[key, m, "max"] = a[n]
  S[key, m, "med"] = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# Ratio to bpfgate within each round, then min/median/max: R[key, m, ...].
function ratios(key, fl, m,    r, n, a, ref) {
  n = 0
  for (r in runs) {
    ref = "bpfgate" SUBSEP fl
    # A drop rate compared with bpfgate's is meaningless where bpfgate drops (almost) nothing.
    if ((m == "drops_per_cpu_s" || m == "dropped_pps" || m == "drop_pct" || m == "tool_dropped_pps") && \
        val[ref, "drop_pct", r] < 5) continue
    if (((key, m, r) in val) && ((ref, m, r) in val) && val[ref, m, r] != 0)
      a[++n] = val[key, m, r] / val[ref, m, r]
  }
  R[key, m, "n"] = n
  if (!n) return
  sort(a, n)
  R[key, m, "min"] = a[1]; R[key, m, "max"] = a[n]
  R[key, m, "med"] = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function has(key, m) { return S[key, m, "n"] > 0 }
function f(x, d) { return sprintf("%." d "f", x) }
function mmm(key, m, d, scale) {  # "med [min-max]"
  if (!has(key, m)) return "-"
  if (scale == "") scale = 1
  return f(S[key, m, "med"] / scale, d) " [" f(S[key, m, "min"] / scale, d) "-" f(S[key, m, "max"] / scale, d) "]"
}
function rat(key, m) {
  if (R[key, m, "n"] == 0) return "-"
  return "x" (R[key, m, "med"] >= 10 ? f(R[key, m, "med"], 1) : f(R[key, m, "med"], 2))
}
function jnum(x) { return x == "" ? "null" : x }

END {
  # Client kept share of the same round's no-flood rate.
  for (k in seen) {
    split(k, kk, SUBSEP)
    for (r in runs) if (((k, "req_s", r) in val) && base[r] > 0) val[k, "kept_pct", r] = 100 * val[k, "req_s", r] / base[r]
  }
  for (k in seen) {
    split(k, kk, SUBSEP)
    for (i = 1; i <= nm; i++) { stats(k, M[i]); ratios(k, kk[2], M[i]) }
  }
  nruns = 0; for (r in runs) nruns++

  if (summary != "") print "contender,flood,metric,runs,min,median,max,ratio_to_bpfgate_min,ratio_to_bpfgate_median,ratio_to_bpfgate_max" > summary

  bk = "none" SUBSEP "none"
  printf "client alone (no flood, no filter): %s req/s, p50 %s ms, p99 %s ms, %s errors (median [min-max] over %d rounds)\n\n", \
    mmm(bk, "req_s", 0), mmm(bk, "p50_ms", 2), mmm(bk, "p99_ms", 2), mmm(bk, "errors", 0), nruns
  if (summary != "") for (i = 1; i <= nm; i++) if (has(bk, M[i]))
    print "none,none," M[i] "," S[bk, M[i], "n"] "," S[bk, M[i], "min"] "," S[bk, M[i], "med"] "," S[bk, M[i], "max"] ",,," > summary

  for (j = 1; j <= nfl; j++) {
    fl = FLOOD[j]
    any = 0; for (w = 1; w <= nwho; w++) if ((WHO[w] SUBSEP fl) in seen) any = 1
    if (!any) continue
    print "== " LABEL[fl] " =="
    print "gateway: offered = generator rate; in = frames the gateway's NAPI took in (the rest its full ring refused);"
    print "dropped = taken in but never reached the stack; ns/pkt = NAPI kthread CPU time per frame taken in;"
    print "napi% = that kthread's share of the wall clock; cpu0/cpu1 = busy shares from /proc/stat (cpu1 includes nginx"
    print "and whatever else runs there); ratios (/bpfgate) are taken within each round, then their median."
    printf "%-10s %7s %7s %7s %6s  %-20s %7s  %-20s %7s %5s %5s %5s\n", "contender", "offered", "in", "dropped", "drop%", \
      "ns/pkt med [min-max]", "/bpfgate", "Mdrops/CPU-s", "/bpfgate", "napi%", "cpu0%", "cpu1%"
    for (w = 1; w <= nwho; w++) {
      who = WHO[w]; k = who SUBSEP fl
      if (!(k in seen)) continue
      printf "%-10s %7s %7s %7s %6s  %-20s %7s  %-20s %7s %5s %5s %5s\n", who, \
        f(S[k, "offered_pps", "med"] / 1e6, 2), f(S[k, "in_pps", "med"] / 1e6, 2), f(S[k, "dropped_pps", "med"] / 1e6, 2), \
        f(S[k, "drop_pct", "med"], 1), mmm(k, "ns_per_pkt", 0), rat(k, "ns_per_pkt"), \
        (who == "none" ? "- (the stack)" : mmm(k, "drops_per_cpu_s", 2, 1e6)), (who == "none" ? "-" : rat(k, "drops_per_cpu_s")), \
        f(S[k, "napi_util_pct", "med"], 0), f(S[k, "cpu0_busy_pct", "med"], 0), f(S[k, "cpu1_busy_pct", "med"], 0)
    }
    print "client (wrk against nginx on the gateway, during the flood; kept = share of the same round's no-flood req/s):"
    printf "%-10s  %-18s %-14s %-20s %-26s %7s %6s\n", "contender", "req/s", "kept%", "p50 ms", "p99 ms", "/bpfgate", "errors"
    for (w = 1; w <= nwho; w++) {
      who = WHO[w]; k = who SUBSEP fl
      if (!(k in seen)) continue
      if (!has(k, "req_s")) { printf "%-10s  %s\n", who, "- (drops everything, the client too)"; continue }
      printf "%-10s  %-18s %-14s %-20s %-26s %7s %6s\n", who, mmm(k, "req_s", 0), mmm(k, "kept_pct", 0), \
        mmm(k, "p50_ms", 2), mmm(k, "p99_ms", 1), rat(k, "p99_ms"), f(S[k, "errors", "med"], 0)
    }
    for (w = 1; w <= nwho; w++) {
      who = WHO[w]; k = who SUBSEP fl
      if (!(k in seen)) continue
      for (i = 1; i <= nm; i++) {
        m = M[i]
        if (!has(k, m)) continue
        if (summary != "") print who "," fl "," m "," S[k, m, "n"] "," S[k, m, "min"] "," S[k, m, "med"] "," S[k, m, "max"] "," \
          (R[k, m, "n"] ? R[k, m, "min"] "," R[k, m, "med"] "," R[k, m, "max"] : ",,") > summary
      }
      if (jsonfile != "") {
        printf "{\"name\":\"compare\",\"contender\":\"%s\",\"flood\":\"%s\",\"runs\":%d", who, fl, S[k, "ns_per_pkt", "n"] > jsonfile
        for (i = 1; i <= nm; i++) if (has(k, M[i])) {
          m = M[i]
          printf ",\"%s\":{\"min\":%s,\"median\":%s,\"max\":%s", m, S[k, m, "min"], S[k, m, "med"], S[k, m, "max"] > jsonfile
          if (R[k, m, "n"]) printf ",\"ratio_to_bpfgate\":%s", R[k, m, "med"] > jsonfile
          printf "}" > jsonfile
        }
        print "}" > jsonfile
      }
    }
    k = "bpfgate" SUBSEP fl
    if (has(k, "map_entries"))
      printf "bpfgate's per-source map after the flood: %s entries of %s (max over rounds %s); all its maps: %.1f MiB (memlock)\n", \
        f(S[k, "map_entries", "med"], 0), f(S[k, "map_max", "med"], 0), f(S[k, "map_entries", "max"], 0), S[k, "maps_memlock", "med"] / 1048576
    print ""
  }

  # ---- targets (issue 3) ----
  print "== targets =="
  k = "bpfgate" SUBSEP "one"
  for (w = 1; w <= nwho; w++) {
    who = WHO[w]
    if (who != "iptables" && who != "nftables") continue
    kc = who SUBSEP "one"
    if (R[kc, "drops_per_cpu_s", "n"]) {
      # bpfgate / contender, per round: the inverse of the contender/bpfgate ratios
      lo = 1 / R[kc, "drops_per_cpu_s", "max"]; md = 1 / R[kc, "drops_per_cpu_s", "med"]; hi = 1 / R[kc, "drops_per_cpu_s", "min"]
      printf "bpfgate drops per CPU-second / %s: %.2f [%.2f-%.2f] (target >= 3): %s\n", who, md, lo, hi, (md >= 3 ? "met" : "NOT met")
    }
  }
  for (j = 1; j <= nfl; j++) {
    fl = FLOOD[j]; k = "bpfgate" SUBSEP fl
    if (!has(k, "kept_pct")) continue
    printf "client under the %s flood with bpfgate: %.0f%% [%.0f-%.0f] of its no-flood req/s (target >= 90): %s\n", \
      (fl == "one" ? "heaviest (one-source)" : fl == "capped" ? "capped one-source" : "spoofed-source"), S[k, "kept_pct", "med"], S[k, "kept_pct", "min"], S[k, "kept_pct", "max"], \
      (S[k, "kept_pct", "med"] >= 90 ? "met" : "NOT met")
    if (fl == "spoof" && has(k, "map_entries"))
      printf "bpfgate's per-source map under the spoofed flood: at most %.0f entries of %.0f configured: %s\n", \
        S[k, "map_entries", "max"], S[k, "map_max", "max"], (S[k, "map_entries", "max"] <= max_sources ? "within its bound" : "OVER its bound")
  }

  # ---- chart data: contender, then per flood ns/pkt med/min/max and kept% med/min/max ----
  if (chartdata != "") {
    for (w = 1; w <= nwho; w++) {
      who = WHO[w]
      if (!((who SUBSEP "one") in seen) && !((who SUBSEP "spoof") in seen)) continue
      line = who
      for (j = 1; j <= nfl; j++) {
        k = WHO[w] SUBSEP FLOOD[j]
        for (q = 1; q <= 2; q++) {
          m = q == 1 ? "ns_per_pkt" : "kept_pct"
          line = line " " (has(k, m) ? S[k, m, "med"] " " S[k, m, "min"] " " S[k, m, "max"] : "NaN NaN NaN")
        }
      }
      print line > chartdata
    }
  }
}
