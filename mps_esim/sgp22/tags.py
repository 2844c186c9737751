"""The tags, named values and size limits of SGP.22 (v2.x) the codec uses."""

from __future__ import annotations

# --- ES10 command tags ------------------------------------------------------------------------

TAG_GET_EUICC_INFO1 = 0xBF20
TAG_GET_EUICC_INFO2 = 0xBF22
TAG_GET_EUICC_CHALLENGE = 0xBF2E
TAG_LIST_PROFILE_INFO = 0xBF2D
TAG_ENABLE_PROFILE = 0xBF31
TAG_DISABLE_PROFILE = 0xBF32
TAG_DELETE_PROFILE = 0xBF33
TAG_MEMORY_RESET = 0xBF34
TAG_SET_NICKNAME = 0xBF29
TAG_LIST_NOTIFICATION = 0xBF28
TAG_RETRIEVE_NOTIFICATIONS = 0xBF2B
TAG_NOTIFICATION_SENT = 0xBF30
TAG_CANCEL_SESSION = 0xBF41
TAG_GET_EUICC_DATA = 0xBF3E
TAG_GET_CONFIGURED_ADDRESSES = 0xBF3C
TAG_SET_DEFAULT_DP_ADDRESS = 0xBF3F
TAG_GET_RAT = 0xBF43
TAG_PREPARE_DOWNLOAD = 0xBF21
TAG_AUTHENTICATE_SERVER = 0xBF38
TAG_BOUND_PROFILE_PACKAGE = 0xBF36
TAG_INITIALISE_SECURE_CHANNEL = 0xBF23
TAG_CONFIGURE_ISDP = 0xBF24
TAG_STORE_METADATA = 0xBF25
TAG_REPLACE_SESSION_KEYS = 0xBF26

# --- data object tags -------------------------------------------------------------------------

TAG_ICCID = 0x5A
TAG_EID = 0x5A
TAG_ISDP_AID = 0x4F
TAG_TAG_LIST = 0x5C
TAG_PROFILE_INFO = 0xE3
TAG_PROFILE_STATE = 0x9F70
TAG_NICKNAME = 0x90
TAG_PROVIDER_NAME = 0x91
TAG_PROFILE_NAME = 0x92
TAG_ICON_TYPE = 0x93
TAG_ICON = 0x94
TAG_PROFILE_CLASS = 0x95
TAG_NOTIFICATION_CONFIG = 0xB6
TAG_PROFILE_OWNER = 0xB7
TAG_DP_PROPRIETARY_DATA = 0xB8
TAG_PROFILE_POLICY_RULES = 0x99
TAG_NOTIFICATION_METADATA = 0xBF2F
TAG_PROFILE_INSTALLATION_RESULT = 0xBF37
TAG_PROFILE_INSTALLATION_RESULT_DATA = 0xBF27
TAG_SIGNATURE = 0x5F37
TAG_OTPK = 0x5F49
TAG_SEQUENCE = 0x30
TAG_OCTET_STRING = 0x04
TAG_UTF8_STRING = 0x0C
TAG_OID = 0x06
TAG_INTEGER = 0x02
TAG_BOOLEAN = 0x01

PROFILE_INFO_TAGS = (TAG_ICCID, TAG_ISDP_AID, TAG_PROFILE_STATE, TAG_NICKNAME,
                     TAG_PROVIDER_NAME, TAG_PROFILE_NAME, TAG_ICON_TYPE, TAG_ICON,
                     TAG_PROFILE_CLASS, TAG_NOTIFICATION_CONFIG, TAG_PROFILE_OWNER,
                     TAG_DP_PROPRIETARY_DATA, TAG_PROFILE_POLICY_RULES)
"""The components of ProfileInfo in their ASN.1 (and so DER) order."""

# --- enumerations and named bits ----------------------------------------------------------------

PROFILE_CLASSES = ("test", "provisioning", "operational")
PROFILE_STATES = ("disabled", "enabled")
NOTIFICATION_EVENTS = ("install", "enable", "disable", "delete")
"""NotificationEvent bits 0-3 (notificationInstall, ...Enable, ...Disable, ...Delete)."""
PPR_IDS = ("pprUpdateControl", "ppr1", "ppr2")
"""PprIds bits: ppr1 = the profile may not be disabled, ppr2 = it may not be deleted."""
UICC_CAPABILITIES = (
    "contactlessSupport", "usimSupport", "isimSupport", "csimSupport", "akaMilenage",
    "akaCave", "akaTuak128", "akaTuak256", "rfu1", "rfu2", "gbaAuthenUsim", "gbaAuthenISim",
    "mbmsAuthenUsim", "eapClient", "javacard", "multos", "multipleUsimSupport",
    "multipleIsimSupport", "multipleCsimSupport", "berTlvFileSupport", "dfLinkSupport",
    "catTp", "getIdentity", "profile-a-x25519", "profile-b-p256")
RSP_CAPABILITIES = ("additionalProfile", "crlSupport", "rpmSupport", "testProfileSupport")
MEMORY_RESET_OPTIONS = ("deleteOperationalProfiles", "deleteFieldLoadedTestProfiles",
                        "resetDefaultSmdpAddress")
EUICC_CATEGORIES = ("other", "basicEuicc", "mediumEuicc", "contactlessEuicc")

MAX_NICKNAME = 64
MAX_PROVIDER_NAME = 32
MAX_PROFILE_NAME = 64
MAX_ICON = 1024
MAX_ADDRESS = 255
MAX_TRANSACTION_ID = 16
CHALLENGE_SIZE = 16
