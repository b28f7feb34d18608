package org.ondevice.runtime

import java.util.concurrent.locks.ReentrantLock
import kotlin.concurrent.withLock

/**
 * A resource used by one call at a time and closed only between calls. ExecuTorch's `Module` must not be
 * destroyed while `execute` runs on another thread: here [close] waits for the running call, and calls after it
 * get null instead of a closed module. The resource is opened by [open] on the first [use], so closing before it
 * was ever used (or while it is being opened) leaks nothing.
 */
class SerialResource<T : AutoCloseable>(private val open: () -> T) : AutoCloseable {
    private val lock = ReentrantLock()
    private var resource: T? = null
    private var closed = false

    /** [block] on the resource, after any running call; null (and [block] not run) once [close] was called. */
    fun <R> use(block: (T) -> R): R? = lock.withLock {
        if (closed) null else block(resource ?: open().also { resource = it })
    }

    /** Waits for the running call, if any, then closes the resource if it was opened. Later calls do nothing. */
    override fun close() = lock.withLock {
        if (!closed) {
            closed = true
            resource?.close()
            resource = null
        }
    }
}
