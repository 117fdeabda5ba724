// The public surface of auth: the model (users, roles, permissions, the matching rule), bearer tokens, the
// `auth` store extension that writes auth state under _keel/auth/, and the per-node cache that enforces it.
export type { Access, Need, Permission, PermissionKind, RoleRecord, TokenRecord, UserRecord } from './model.js';
export {
  accessLevels,
  allows,
  authNamePattern,
  checkAuthName,
  checkPermission,
  describeNeed,
  permissionKinds,
  permits,
  rootName,
  rootPermission,
} from './model.js';
export { generateToken, hashToken, isWellFormedToken, sameHash, tokenIdOf, tokenIdPattern, tokenPrefix } from './tokens.js';
export type { AuthOp } from './extension.js';
export { authExtension, authExtensionName, authKeys, authPrefix, validateAuthOp } from './extension.js';
export type { Principal } from './auth-state.js';
export { AuthState } from './auth-state.js';
