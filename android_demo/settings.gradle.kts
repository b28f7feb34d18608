pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "OndeviceDemo"

include(":app") // the Android app: UI, device state, ExecuTorch
include(":policy") // plain Kotlin (no android.*): policy, manifest, preprocessing, latency file; JVM tests
