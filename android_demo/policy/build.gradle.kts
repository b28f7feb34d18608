// Plain Kotlin, no Android: the policy, the manifest and policy.json readers, preprocessing and the latency file.
// `./gradlew :policy:test` runs the JUnit tests, including every vector of ../tests/policy_vectors.json and
// ../tests/resize_vectors.json.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

kotlin {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_11) }
}

dependencies {
    testImplementation(platform(libs.junit.bom))
    testImplementation(libs.junit.jupiter)
    testRuntimeOnly(libs.junit.platform.launcher)
}

tasks.test {
    useJUnitPlatform()
    systemProperty("ondevice.vectors", rootProject.file("../tests/policy_vectors.json").absolutePath)
    systemProperty("ondevice.resize_vectors", rootProject.file("../tests/resize_vectors.json").absolutePath)
}
