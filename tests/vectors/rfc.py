"""Examples copied from the RFCs, as data. Each constant names its section.

The JWS examples were checked against their published keys when added (the signatures
verify), so a failure in ``test_rfc_examples`` points at our code, not at the vector.
"""

from __future__ import annotations

__all__ = [
    "RFC6749_APPENDIX_B_CLIENT_ID",
    "RFC6749_APPENDIX_B_ENCODED",
    "RFC6749_BASIC_EXAMPLE",
    "RFC6749_ERROR_EXAMPLE",
    "RFC7515_A2_JWS",
    "RFC7515_A2_N",
    "RFC7515_A3_JWS",
    "RFC7515_A3_X",
    "RFC7515_A3_Y",
    "RFC7515_CLAIMS",
    "RFC7519_UNSECURED_JWT",
    "RFC7617_BASIC_EXAMPLE",
]

# RFC 6749 §4.4.2 (and §2.3.1, §4.1.3): client s6BhdRkqt3 with secret gX1fBat3bV.
RFC6749_BASIC_EXAMPLE = ("Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW", "s6BhdRkqt3", "gX1fBat3bV")

# RFC 6749 Appendix B: the client_id " %&+£€" form-urlencoded (as Basic credentials are,
# §2.3.1, before base64).
RFC6749_APPENDIX_B_CLIENT_ID = " %&+£€"
RFC6749_APPENDIX_B_ENCODED = "+%25%26%2B%C2%A3%E2%82%AC"

# RFC 6749 §5.2: the error response example.
RFC6749_ERROR_EXAMPLE = {"error": "invalid_request"}

# RFC 7617 §2: user-id "Aladdin", password "open sesame".
RFC7617_BASIC_EXAMPLE = ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame")

# RFC 7515 Appendix A: the payload all examples sign (note the CRLFs inside the JSON).
RFC7515_CLAIMS = {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}

# RFC 7515 Appendix A.2: RS256. Public key n (e = AQAB) and the compact JWS.
RFC7515_A2_N = (
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4"
    "QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbB"
    "YUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWN"
    "moudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
)
_A_PAYLOAD = ("eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290"
              "Ijp0cnVlfQ")
RFC7515_A2_JWS = (
    "eyJhbGciOiJSUzI1NiJ9." + _A_PAYLOAD + "."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5j"
    "ujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L0"
    "7Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipU"
    "TI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
)

# RFC 7515 Appendix A.3: ES256 (P-256). Public key x, y and the compact JWS.
RFC7515_A3_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
RFC7515_A3_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
RFC7515_A3_JWS = (
    "eyJhbGciOiJFUzI1NiJ9." + _A_PAYLOAD + "."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)

# RFC 7519 §6.1: an Unsecured JWT ({"alg":"none"}) with the same claims.
RFC7519_UNSECURED_JWT = "eyJhbGciOiJub25lIn0." + _A_PAYLOAD + "."
