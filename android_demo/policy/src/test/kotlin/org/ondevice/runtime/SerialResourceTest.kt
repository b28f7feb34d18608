package org.ondevice.runtime

import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class SerialResourceTest {
    /** A stand-in for ExecuTorch's Module that records what happens to it, in order. */
    private class FakeModule(private val events: MutableList<String>) : AutoCloseable {
        init {
            events += "open"
        }

        fun execute(name: String) {
            events += "execute $name"
        }

        override fun close() {
            events += "close"
        }
    }

    @Test
    fun `opens on first use, runs calls, closes once, and refuses calls after close`() {
        val events = Collections.synchronizedList(mutableListOf<String>())
        val resource = SerialResource { FakeModule(events) }
        assertEquals(emptyList<String>(), events)
        assertEquals(1, resource.use { it.execute("a"); 1 })
        resource.use { it.execute("b") }
        resource.close()
        resource.close()
        assertNull(resource.use { it.execute("late") })
        assertEquals(listOf("open", "execute a", "execute b", "close"), events)
    }

    @Test
    fun `closing before any use never opens it`() {
        val events = mutableListOf<String>()
        val resource = SerialResource { FakeModule(events) }
        resource.close()
        assertNull(resource.use { it.execute("late") })
        assertEquals(emptyList<String>(), events)
    }

    @Test
    fun `close waits for the running call`() {
        val events = Collections.synchronizedList(mutableListOf<String>())
        val resource = SerialResource { FakeModule(events) }
        val running = CountDownLatch(1)
        val release = CountDownLatch(1)
        val inference = thread {
            resource.use {
                it.execute("start")
                running.countDown()
                release.await()
                it.execute("end")
            }
        }
        assertTrue(running.await(10, TimeUnit.SECONDS))
        val closer = thread { resource.close() }
        closer.join(300) // long enough for an unguarded close to run
        assertTrue(closer.isAlive, "close returned while a call was running")
        assertFalse("close" in events, "closed during the call: $events")
        release.countDown()
        inference.join(10_000)
        closer.join(10_000)
        assertEquals(listOf("open", "execute start", "execute end", "close"), events)
    }
}
