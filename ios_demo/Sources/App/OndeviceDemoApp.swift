import SwiftUI

/// The ondevice demo: a bundle's sub-networks chosen by the battery- and thermal-aware policy.
@main
struct OndeviceDemoApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
