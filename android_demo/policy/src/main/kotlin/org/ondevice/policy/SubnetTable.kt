package org.ondevice.policy

import org.ondevice.json.JsonException
import org.ondevice.json.JsonObject
import org.ondevice.json.asArray
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asLong
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.optional
import org.ondevice.json.required

/** One sub-network as the manifest lists it: gates ("TFFT", T = skip), cost, and top-1 per precision. */
data class SubnetInfo(
    val gates: String,
    val name: String,
    val flops: Long,
    val params: Long,
    val accuracy: Map<String, Double>,
)

/** One sub-network's row of a latency table; the policy plans with [statistic], or the median without it. */
data class LatencyEntry(val medianMs: Double, val p90Ms: Double?, val minMs: Double?) {
    fun value(statistic: LatencyStatistic): Double = when (statistic) {
        LatencyStatistic.MEDIAN -> medianMs
        LatencyStatistic.P90 -> p90Ms ?: medianMs
        LatencyStatistic.MIN -> minMs ?: medianMs
    }
}

/**
 * A device's latency table (`manifest.latency[device]`): [subnets] measured cool, and [thermal] the entries measured
 * while the phone was at a hotter status (`thermal.moderate.subnets`, ...), by ascending level, never [Thermal.NONE].
 */
data class LatencyTable(
    val backend: String,
    val measuredAt: String?,
    val subnets: Map<String, LatencyEntry>,
    val thermal: Map<Thermal, Map<String, LatencyEntry>> = emptyMap(),
) {
    /**
     * Why the thermal tables cannot be used, or null: each must time exactly the sub-networks of the cool table, so
     * that every state ranks the same candidates (docs/policy.md, section 2, rule 3). [device] names the table.
     */
    fun thermalProblem(device: String): String? {
        val (level, hot) = thermal.entries.firstOrNull { it.value.keys != subnets.keys } ?: return null
        return "latency table \"$device\": the \"${level.tableKey}\" thermal table lists " +
            "${hot.keys.sortedWith(CODE_POINT_ORDER)}, the cool table ${subnets.keys.sortedWith(CODE_POINT_ORDER)}; " +
            "a thermal table must time the same sub-networks"
    }
}

/** What the policy reads from `manifest.json`: the gates, the precision, the sub-networks and the latency tables. */
data class SubnetCatalog(
    val numStages: Int,
    val precision: String?,
    val subnets: List<SubnetInfo>,
    val latency: Map<String, LatencyTable>,
) {
    companion object {
        /** From a manifest object (or the `manifest` part of the test vectors); [source] names it in errors. */
        fun fromJson(manifest: JsonObject, source: String = "manifest.json"): SubnetCatalog {
            val gates = manifest.required("gates", source).asObject("$source: gates")
            val subnets = manifest.required("subnets", source).asArray("$source: subnets").mapIndexed { i, v ->
                val where = "$source: subnets[$i]"
                val s = v.asObject(where)
                SubnetInfo(
                    gates = s.required("gates", where).asString("$where.gates"),
                    name = s.required("name", where).asString("$where.name"),
                    flops = s.required("flops", where).asLong("$where.flops"),
                    params = s.required("params", where).asLong("$where.params"),
                    accuracy = s.required("accuracy", where).asObject("$where.accuracy").members
                        .mapValues { (key, a) -> a.asDouble("$where.accuracy.$key") },
                )
            }
            val precision = manifest.optional("precision")?.asObject("$source: precision")?.optional("name")
            return SubnetCatalog(
                numStages = gates.required("num_stages", "$source: gates").asInt("$source: gates.num_stages"),
                precision = precision?.asString("$source: precision.name"),
                subnets = subnets,
                latency = latencyTables(manifest.optional("latency")?.asObject("$source: latency"), source),
            )
        }

        /**
         * `manifest.latency`: device name -> table, with its thermal tables (keyed by Android's status names,
         * `light` .. `shutdown`). A thermal table that does not time exactly the cool table's sub-networks is refused.
         */
        fun latencyTables(tables: JsonObject?, source: String = "manifest.json"): Map<String, LatencyTable> =
            tables?.members.orEmpty().mapValues { (device, v) ->
                val where = "$source: latency[\"$device\"]"
                val table = v.asObject(where)
                val thermal = table.optional("thermal")?.asObject("$where.thermal")?.members.orEmpty()
                    .map { (key, hot) ->
                        val at = "$where.thermal.$key"
                        val level = Thermal.fromTableKey(key) ?: throw JsonException(
                            "$at: unknown thermal status \"$key\"; one of ${Thermal.hotter.map { it.tableKey }}",
                        )
                        level to entries(hot.asObject(at).required("subnets", at).asObject("$at.subnets"), at)
                    }
                    .sortedBy { it.first }
                    .toMap()
                LatencyTable(
                    backend = table.required("backend", where).asString("$where.backend"),
                    measuredAt = table.optional("measured_at")?.asString("$where.measured_at"),
                    subnets = entries(table.required("subnets", where).asObject("$where.subnets"), where),
                    thermal = thermal,
                ).also { parsed -> parsed.thermalProblem(device)?.let { throw JsonException("$source: $it") } }
            }

        /** A table's `subnets`: gates -> entry; [where] is the table's place for errors. */
        private fun entries(subnets: JsonObject, where: String): Map<String, LatencyEntry> =
            subnets.members.mapValues { (g, e) ->
                val at = "$where.subnets.$g"
                val entry = e.asObject(at)
                LatencyEntry(
                    medianMs = entry.required("median_ms", at).asDouble("$at.median_ms"),
                    p90Ms = entry.optional("p90_ms")?.asDouble("$at.p90_ms"),
                    minMs = entry.optional("min_ms")?.asDouble("$at.min_ms"),
                )
            }
    }
}

/** One row of the policy's table. */
data class SubNetwork(val gates: String, val name: String, val latencyMs: Double, val accuracy: Double, val flops: Long)

/** Where the table's latencies come from. */
sealed class LatencySource(val kind: String) {
    /** The latency table's device name; null for the FLOPs estimate. */
    val tableName: String?
        get() = when (this) {
            is Device -> device
            is FallbackTable -> device
            FlopsEstimate -> null
        }

    /** The table measured on this device. */
    data class Device(val device: String, val backend: String) : LatencySource("device")

    /** No table for this device: the most recently measured one, used as measured there. */
    data class FallbackTable(val device: String, val backend: String) : LatencySource("fallback-table")

    /** No table at all: FLOPs x `latency.fallback_ms_per_gflop`. */
    data object FlopsEstimate : LatencySource("flops-estimate")
}

/** A bundle the policy cannot choose from (no usable latency or accuracy); the message says what to run. */
class SubnetTableException(message: String) : IllegalArgumentException(message)

/** Rules 2 and 5 on the latency measured at thermal [level] (never [Thermal.NONE]): its own front, same candidates. */
data class ThermalTable(val level: Thermal, val front: List<SubNetwork>, val candidates: List<SubNetwork>)

/**
 * The Pareto front the policy chooses from, cheapest first, and every candidate (docs/policy.md, section 2).
 * The front is strictly increasing in latency and in accuracy. [thermal] holds the fronts of the latency measured
 * hotter, by ascending level (empty without thermal tables).
 */
data class SubnetTable(
    val front: List<SubNetwork>,
    val candidates: List<SubNetwork>,
    val source: LatencySource,
    val accuracyKey: String,
    val device: String?,
    val thermal: List<ThermalTable> = emptyList(),
) {
    companion object {
        /** Rules 1-5 of docs/policy.md, section 2, for [device] (null: no device name, use the newest table). */
        fun build(catalog: SubnetCatalog, config: PolicyConfig, device: String?): SubnetTable {
            val (latency, source) = selectLatency(catalog, config, device)
            val listed = catalog.subnets.filter { it.gates in latency }
            if (listed.isEmpty()) {
                throw SubnetTableException(
                    "the latency table \"${source.tableName}\" lists none of the manifest's sub-networks; " +
                        "profile the bundle (`ondevice profile`)",
                )
            }
            val key = accuracyKey(catalog, listed, config)
            fun rows(measured: Map<String, Double>) = listed.sortedBy { it.gates }.map { s ->
                require(s.gates.length == catalog.numStages && s.gates.all { it == 'T' || it == 'F' }) {
                    "gates \"${s.gates}\": need ${catalog.numStages} letters T/F"
                }
                val ms = measured.getValue(s.gates)
                if (!(ms >= 0.0)) throw SubnetTableException("sub-network ${s.gates}: latency $ms ms is not >= 0")
                SubNetwork(s.gates, s.name, ms, s.accuracy.getValue(key), s.flops)
            }
            val candidates = rows(latency)
            val thermal = selectThermalLatency(catalog, config, source).map { (level, hot) ->
                rows(hot).let { ThermalTable(level, paretoFront(it), it) }
            }
            return SubnetTable(paretoFront(candidates), candidates, source, key, device, thermal)
        }

        private fun selectLatency(
            catalog: SubnetCatalog,
            config: PolicyConfig,
            device: String?,
        ): Pair<Map<String, Double>, LatencySource> {
            val tables = catalog.latency
            val statistic = config.latency.statistic
            val (name, source) = when {
                device != null && device in tables ->
                    device to LatencySource.Device(device, tables.getValue(device).backend)
                tables.isNotEmpty() -> {
                    // the newest measured_at; a table without one is older than any with one; ties: the larger name
                    val newest = tables.entries.reduce { best, e -> if (NEWEST.compare(e, best) > 0) e else best }
                    newest.key to LatencySource.FallbackTable(newest.key, newest.value.backend)
                }
                else -> {
                    val perGflop = config.latency.fallbackMsPerGflop
                    return catalog.subnets.associate { it.gates to it.flops.toDouble() / 1e9 * perGflop } to
                        LatencySource.FlopsEstimate
                }
            }
            return statistic(tables.getValue(name).subnets, statistic) to source
        }

        /** Rule 3: level -> gates -> latency of the chosen table's thermal tables, by ascending level. */
        private fun selectThermalLatency(
            catalog: SubnetCatalog,
            config: PolicyConfig,
            source: LatencySource,
        ): List<Pair<Thermal, Map<String, Double>>> {
            val name = source.tableName ?: return emptyList()
            val table = catalog.latency.getValue(name)
            table.thermalProblem(name)?.let { throw SubnetTableException(it) }
            return table.thermal.entries.sortedBy { it.key }
                .map { (level, entries) -> level to statistic(entries, config.latency.statistic) }
        }

        /** Rules 2 and 2b on one table's entries. */
        private fun statistic(entries: Map<String, LatencyEntry>, statistic: LatencyStatistic): Map<String, Double> =
            monotoneLatency(entries.mapValues { (_, entry) -> entry.value(statistic) })

        /**
         * Rule 2b: skipping more stages never costs more, so each sub-network's latency is capped by that of every
         * sub-network that runs at least its stages (an `F` wherever it has one). `min` of doubles is exact.
         */
        internal fun monotoneLatency(latency: Map<String, Double>): Map<String, Double> {
            for (gates in latency.keys.sortedWith(CODE_POINT_ORDER)) {
                val ms = latency.getValue(gates)
                if (!(ms >= 0.0)) throw SubnetTableException("sub-network $gates: latency $ms ms is not >= 0")
            }
            fun runsAtLeast(other: String, gates: String) =
                other.length == gates.length && other.indices.all { i -> other[i] == 'F' || gates[i] == 'T' }
            return latency.mapValues { (gates, _) ->
                latency.filterKeys { other -> other == gates || runsAtLeast(other, gates) }.values.minOf { it }
            }
        }

        private val NEWEST: Comparator<Map.Entry<String, LatencyTable>> =
            compareBy<Map.Entry<String, LatencyTable>> { it.value.measuredAt != null }
                .thenComparing({ it.value.measuredAt ?: "" }, CODE_POINT_ORDER)
                .thenComparing({ it.key }, CODE_POINT_ORDER)

        private fun accuracyKey(catalog: SubnetCatalog, listed: List<SubnetInfo>, config: PolicyConfig): String {
            config.accuracy.precision?.let { key ->
                val missing = listed.filter { key !in it.accuracy }.map { it.gates }
                if (missing.isNotEmpty()) {
                    throw SubnetTableException(
                        "policy.json asks for accuracy \"$key\" but sub-networks $missing have none; " +
                            "they list ${listed.first().accuracy.keys.sorted()}",
                    )
                }
                return key
            }
            for (key in listOfNotNull(catalog.precision, "fp32")) {
                if (key.isNotEmpty() && listed.all { key in it.accuracy }) return key
            }
            throw SubnetTableException(
                "the manifest's sub-networks do not all have a \"${catalog.precision}\" or \"fp32\" accuracy, which " +
                    "the policy ranks them by; evaluate the checkpoint (`ondevice eval`) and re-export the bundle",
            )
        }

        /**
         * Sorted by (latency ascending, accuracy descending), stable over rows sorted by gates, keeping each row
         * more accurate than every one before it. Compared with `<`/`>` on doubles, as Python does (so -0.0 == 0.0).
         */
        private fun paretoFront(rows: List<SubNetwork>): List<SubNetwork> {
            val order = rows.sortedWith { a, b ->
                when {
                    a.latencyMs < b.latencyMs -> -1
                    a.latencyMs > b.latencyMs -> 1
                    a.accuracy > b.accuracy -> -1
                    a.accuracy < b.accuracy -> 1
                    else -> 0
                }
            }
            var best = Double.NEGATIVE_INFINITY
            return order.filter { row -> (row.accuracy > best).also { if (it) best = row.accuracy } }
        }
    }
}

/** Strings by Unicode code point, as Python compares them (Kotlin's compareTo uses UTF-16 units). */
internal val CODE_POINT_ORDER = Comparator<String> { a, b ->
    var i = 0
    var j = 0
    while (i < a.length && j < b.length) {
        val ca = a.codePointAt(i)
        val cb = b.codePointAt(j)
        if (ca != cb) return@Comparator ca.compareTo(cb)
        i += Character.charCount(ca)
        j += Character.charCount(cb)
    }
    (a.length - i).compareTo(b.length - j)
}
