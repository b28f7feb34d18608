package org.ondevice.bundle

import org.ondevice.policy.Thermal

/**
 * One interleaved round of the benchmark: the thermal status read just before it (Android's
 * `PowerManager.getCurrentThermalStatus`; null when the phone does not say) and each sub-network's time in ms.
 */
data class TimedRound(val status: Thermal?, val samplesMs: Map<String, Double>)

/** The rounds timed at one hotter status: how many, and each sub-network's statistics over them. */
data class ThermalLatency(val runs: Int, val subnets: Map<String, LatencyStats>) {
    init {
        require(runs >= 1) { "a thermal table needs runs >= 1, got $runs" }
        require(subnets.isNotEmpty()) { "a thermal table needs at least one sub-network" }
    }
}

/**
 * How many rounds the benchmark times: at least [runs], and then more until [sustainedMs] of timed rounds have
 * passed (0: exactly [runs]). A sustained run heats the phone, so that the hotter thermal statuses get rounds too.
 */
data class RoundSchedule(val runs: Int, val sustainedMs: Long = 0) {
    init {
        require(runs >= 1 && sustainedMs >= 0) { "need runs >= 1 and sustainedMs >= 0, got $runs and $sustainedMs" }
    }

    /** Whether to time another round after [done] rounds and [elapsedNs] since the first one started. */
    fun more(done: Int, elapsedNs: Long): Boolean = done < runs || elapsedNs < sustainedMs * 1_000_000L
}

/**
 * The latency file's tables from rounds timed at several thermal statuses (docs/policy.md, section 2, rule 3):
 * [subnets] are the statistics of the rounds at the coolest status seen ([coolStatus]; its [runs] rounds), and
 * [thermal] those of every hotter status with at least [MIN_THERMAL_RUNS] rounds. Hotter statuses with fewer
 * rounds are [dropped] (the p90 of a handful of runs is decided by its one or two slowest), and so are rounds
 * without a status when other rounds have one ([unknownRounds]); when no round has a status, every round is in
 * [subnets] and [coolStatus] is null. [note] says all this in a line for the screen and the log.
 */
data class LatencyByThermal(
    val coolStatus: Thermal?,
    val runs: Int,
    val subnets: Map<String, LatencyStats>,
    val thermal: Map<Thermal, ThermalLatency>,
    val dropped: Map<Thermal, Int> = emptyMap(),
    val unknownRounds: Int = 0,
    val minRuns: Int = MIN_THERMAL_RUNS,
) {
    val note: String
        get() {
            val parts = mutableListOf<String>()
            parts += when (coolStatus) {
                null -> "thermal status unknown: one table from all $runs rounds"
                Thermal.NONE -> "cool table: $runs rounds at NONE"
                else -> "cool table: $runs rounds at $coolStatus, the coolest status seen (the phone was warm)"
            }
            if (coolStatus != null && runs < minRuns) parts += "fewer than $minRuns cool rounds: its p90 is unreliable"
            thermal.forEach { (status, table) -> parts += "${status.tableKey}: ${table.runs} rounds" }
            if (dropped.isNotEmpty()) {
                val which = dropped.entries.joinToString { (status, n) -> "${status.tableKey} ($n)" }
                parts += "dropped $which: fewer than $minRuns rounds, a p90 of so few runs is unreliable"
            }
            if (unknownRounds > 0) parts += "dropped $unknownRounds rounds without a thermal status"
            return parts.joinToString("; ")
        }

    companion object {
        /** Below this many rounds a status gets no thermal table (the same bound as `ondevice profile`'s warning). */
        const val MIN_THERMAL_RUNS = 20

        /** Groups [rounds] by status; every round must time the same sub-networks. Stats as [LatencyStats.of]. */
        fun of(rounds: List<TimedRound>, minRuns: Int = MIN_THERMAL_RUNS): LatencyByThermal {
            require(rounds.isNotEmpty()) { "no timed rounds" }
            require(minRuns >= 1) { "minRuns must be >= 1, got $minRuns" }
            val gates = rounds.first().samplesMs.keys
            require(rounds.all { it.samplesMs.keys == gates }) { "every round must time the same sub-networks" }
            fun stats(group: List<TimedRound>) =
                gates.associateWith { g -> LatencyStats.of(group.map { it.samplesMs.getValue(g) }) }

            val byStatus = rounds.mapNotNull { round -> round.status?.let { it to round } }
                .groupBy({ it.first }, { it.second })
                .toSortedMap()
            if (byStatus.isEmpty()) {
                return LatencyByThermal(null, rounds.size, stats(rounds), emptyMap(), minRuns = minRuns)
            }
            val cool = byStatus.firstKey()
            val hotter = byStatus.filterKeys { it != cool }
            return LatencyByThermal(
                coolStatus = cool,
                runs = byStatus.getValue(cool).size,
                subnets = stats(byStatus.getValue(cool)),
                thermal = hotter.filterValues { it.size >= minRuns }
                    .mapValues { (_, group) -> ThermalLatency(group.size, stats(group)) },
                dropped = hotter.filterValues { it.size < minRuns }.mapValues { (_, r) -> r.size },
                unknownRounds = rounds.count { it.status == null },
                minRuns = minRuns,
            )
        }
    }
}
