import Actors
import Foundation

extension DatabaseIdentity {
    /// The identity a request's credential runs statements as.
    init(_ credential: Credential) {
        let (role, claims) = RecordsController.identity(credential)
        let userId: UUID? = if case .token(let subject) = credential { UUID(uuidString: subject.id) } else { nil }
        self.init(role: credential.isAdmin ? nil : role, claims: claims, userId: userId)
    }
}
