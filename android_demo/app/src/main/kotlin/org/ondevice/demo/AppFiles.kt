package org.ondevice.demo

import android.content.Context
import java.io.File
import org.ondevice.bundle.LatencyReport

/** Where the app finds its bundle and writes its latency file: its external files directory (adb push/pull). */
object AppFiles {
    /** `adb push bundle/. /sdcard/Android/data/org.ondevice.demo/files/bundle/` */
    fun bundleDir(context: Context): File = File(context.getExternalFilesDir(null), "bundle")

    /** `adb pull /sdcard/Android/data/org.ondevice.demo/files/latency.json` */
    fun latencyFile(context: Context): File = File(context.getExternalFilesDir(null), LatencyReport.FILE_NAME)
}
