package org.ondevice.policy

/**
 * What the policy remembers between calls: the current choice ([gates], null before the first decision), when it
 * was made ([sinceS]) and since when an upgrade has been possible at every call ([upSinceS], null when it is not).
 */
data class PolicyMemory(val gates: String? = null, val sinceS: Double = 0.0, val upSinceS: Double? = null)

/** Which cap bound the choice: the deadline at this heat, or the energy that heat, battery and power-save allow. */
enum class Limit { LATENCY, ENERGY }

/**
 * A choice and the numbers behind it (docs/policy.md, section 3); [memory] goes into the next `decide` call.
 *
 * @property gates the sub-network to run; [target] is what the policy would pick without hysteresis.
 * @property level the thermal level the policy planned for.
 * @property battery the battery fraction it used (unknown and out-of-range readings resolved).
 * @property tableLevel the level whose latency table it ranked with: the hottest one measured at or below [level],
 *   [Thermal.NONE] for the cool table.
 */
data class Decision(
    val gates: String,
    val index: Int,
    val latencyMs: Double,
    val accuracy: Double,
    val target: String,
    val switched: Boolean,
    val level: Thermal,
    val battery: Double,
    val energy: Double,
    val latencyBudgetMs: Double,
    val latencyCapMs: Double,
    val energyCapMs: Double,
    val capMs: Double,
    val floor: Double,
    val memory: PolicyMemory,
    val tableLevel: Thermal = Thermal.NONE,
) {
    val held: Boolean get() = gates != target
    val belowFloor: Boolean get() = accuracy < floor
    val overBudget: Boolean get() = latencyMs > capMs
    val limit: Limit get() = if (latencyCapMs <= energyCapMs) Limit.LATENCY else Limit.ENERGY
}

/**
 * The sub-network policy for one bundle on one device: [decide] is pure.
 *
 * A line-for-line port of `ondevice.policy.engine.policy` (spec: docs/policy.md). Only double arithmetic, in the
 * order the spec writes it, so every number equals Python's bit for bit; `tests/policy_vectors.json` checks that.
 */
class Policy(val table: SubnetTable, val config: PolicyConfig) {
    /**
     * One front as the decision reads it, for one thermal level: that of the table measured at [tableLevel] (the
     * hottest at or below the level), and the [slowdown] that table does not already hold.
     */
    private class LevelFront(val tableLevel: Thermal, front: List<SubNetwork>, val slowdown: Double) {
        val gates = front.map { it.gates }
        val latency = DoubleArray(front.size) { front[it].latencyMs }
        val accuracy = DoubleArray(front.size) { front[it].accuracy }
        val indexOf = gates.withIndex().associate { (i, g) -> g to i }
        val refMs = latency.last()

        /** How many entries have latency <= [cap]: a prefix, since the front is sorted by latency. */
        fun countFitting(cap: Double): Int {
            var k = 0
            while (k < latency.size && latency[k] <= cap) k++
            return k
        }
    }

    /** By level NONE..SHUTDOWN. */
    private val fronts: List<LevelFront>
    private val accuracyOf = table.candidates.associate { it.gates to it.accuracy }
    private val upScale = 1.0 - config.hysteresis.upgradeMargin

    init {
        require(table.front.isNotEmpty()) { "the policy needs at least one sub-network; re-run `ondevice export`" }
        val measured = mapOf(Thermal.NONE to table.front) + table.thermal.associate { it.level to it.front }
        val slowdown = config.thermal.slowdown
        fronts = Thermal.entries.map { level ->
            val m = measured.keys.filter { it <= level }.max()
            val s = if (m == Thermal.NONE) slowdown[level.ordinal] else slowdown[level.ordinal] / slowdown[m.ordinal]
            LevelFront(m, measured.getValue(m), s)
        }
    }

    /** Gates of the cool table's front, cheapest first. */
    val frontGates: List<String> get() = fronts[0].gates

    /** Gates of the front the policy ranks with at thermal [level], cheapest first. */
    fun frontAt(level: Thermal): List<String> = fronts[level.ordinal].gates

    /** The thermal level: max(status, headroom forecast); unknown both ways: `thermal.unknown_level`. */
    fun thermalLevel(thermal: Thermal?, headroom: Double?): Thermal {
        var level = thermal?.ordinal ?: -1
        if (headroom != null && !headroom.isNaN()) {
            var forecast = 0
            for (threshold in config.thermal.headroomThresholds) {
                if (headroom >= threshold) forecast++ else break
            }
            if (forecast > level) level = forecast
        }
        return if (level < 0) config.thermal.unknownLevel else Thermal.entries[level]
    }

    /** The choice for [state] at [nowS] (a monotonic clock in seconds) after [memory]. */
    fun decide(state: DeviceState, nowS: Double, memory: PolicyMemory = PolicyMemory()): Decision {
        require(nowS.isFinite()) { "nowS must be a finite time in seconds, got $nowS" }
        val th = config.thermal
        val bat = config.battery
        val level = thermalLevel(state.thermal, state.headroom)

        val reported = state.battery
        val battery = when {
            reported == null || !(reported >= 0.0) -> bat.unknownFraction // unknown, NaN or negative
            reported > 1.0 -> 1.0
            else -> reported
        }
        val batteryEnergy = if (state.charging == true && bat.chargingIgnoresBattery) {
            1.0
        } else {
            bat.tiers.firstOrNull { battery < it.below }?.energy ?: 1.0
        }
        val givenBudget = state.latencyBudgetMs
        val budget = if (givenBudget == null || !(givenBudget > 0.0)) config.latency.defaultBudgetMs else givenBudget
        val givenFloor = state.accuracyFloor
        val floor = if (givenFloor == null || givenFloor.isNaN()) config.accuracy.defaultFloor else givenFloor

        val front = fronts[level.ordinal]
        val accuracy = front.accuracy
        val powerSave = if (state.powerSave == true) bat.powerSaveEnergy else 1.0
        val energy = th.energy[level.ordinal] * batteryEnergy * powerSave
        val latencyCap = budget / front.slowdown
        val energyCap = energy * front.refMs
        val cap = if (latencyCap <= energyCap) latencyCap else energyCap

        val fits = front.countFitting(cap)
        val target = if (fits > 0 && accuracy[fits - 1] >= floor) settle(accuracy, fits - 1, floor) else 0

        // a candidate off this level's front is ranked behind one at least as accurate and no slower: take that one
        val current = memory.gates?.let { previous ->
            front.indexOf[previous] ?: accuracyOf[previous]?.let { a -> accuracy.indexOfFirst { it >= a } }
        }
        var choice: Int
        var since: Double
        var upSince: Double? = null
        if (current == null) {
            choice = target
            since = nowS
        } else {
            since = if (nowS < memory.sinceS) nowS else memory.sinceS // a clock that went back restarts the dwell
            choice = current
            if (target < current) {
                if (nowS - since >= config.hysteresis.minDwellDownS) choice = target
            } else if (target > current) {
                var upCap = latencyCap * upScale
                if (energyCap < upCap) upCap = energyCap
                val upFits = front.countFitting(upCap)
                val up = if (upFits > 0 && accuracy[upFits - 1] >= floor) settle(accuracy, upFits - 1, floor) else 0
                if (up > current) {
                    val previous = memory.upSinceS
                    val start = if (previous == null || previous > nowS) nowS else previous
                    upSince = start
                    if (nowS - start >= config.hysteresis.minDwellUpS) choice = up
                }
            }
        }
        val switched = current != null && front.gates[choice] != memory.gates
        if (switched) {
            since = nowS
            upSince = null
        }
        val chosen = front.gates[choice]
        return Decision(
            gates = chosen,
            index = choice,
            latencyMs = front.latency[choice],
            accuracy = accuracy[choice],
            target = front.gates[target],
            switched = switched,
            level = level,
            battery = battery,
            energy = energy,
            latencyBudgetMs = budget,
            latencyCapMs = latencyCap,
            energyCapMs = energyCap,
            capMs = cap,
            floor = floor,
            memory = PolicyMemory(chosen, since, upSince),
            tableLevel = front.tableLevel,
        )
    }

    /** The cheapest front index up to [best] within the slack of [best]'s accuracy and meeting [floor]. */
    private fun settle(accuracy: DoubleArray, best: Int, floor: Double): Int {
        var need = accuracy[best] - config.accuracy.slack
        if (need < floor) need = floor
        var i = 0
        while (accuracy[i] < need) i++
        return i
    }

    companion object {
        /** The policy for [device] from a bundle's `policy.json` text and its manifest's sub-networks. */
        fun create(config: PolicyConfig, catalog: SubnetCatalog, device: String?): Policy =
            Policy(SubnetTable.build(catalog, config, device), config)
    }
}

/** A policy with its memory, for callers that decide in sequence. Not thread-safe: call from one thread. */
class PolicySession(val policy: Policy, var memory: PolicyMemory = PolicyMemory()) {
    fun decide(state: DeviceState, nowS: Double): Decision =
        policy.decide(state, nowS, memory).also { memory = it.memory }
}
