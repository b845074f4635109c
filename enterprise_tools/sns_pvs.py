"""The SNS beam-settings PVs of the errant-beam work (the public JLab configuration's list).

One place for the names, shared by the config defaults and the simulator.
"""

ERRANT_BEAM_PVS: tuple[str, ...] = (
    "FE_IS:Match:TunerPos",
    "LEBT:Chop_N:V_Set",
    "LEBT:Chop_P:V_Set",
    "LEBT:Focus_1:V_Set",
    "LEBT:Focus_2:V_Set",
    "LEBT:Steer_A:V_Set",
    "LEBT:Steer_B:V_Set",
    "LEBT:Steer_C:V_Set",
    "LEBT:Steer_D:V_Set",
    "Src:Accel:V_Set",
    "Src:H2:Flw_Set",
    "Src:Ign:Pwr_Set",
    "Src:RF_Gnd:Pwr_Set",
    "ICS_Chop:RampDown:PW",
    "ICS_Chop:RampUp:PWChange",
    "ICS_MPS:Gate_Source:Offset",
    "ICS_Tim:Chop_Flavor1:BeamOn",
    "ICS_Tim:Chop_Flavor1:OnPulseWidth",
    "ICS_Tim:Chop_Flavor1:RampUp",
    "ICS_Tim:Chop_Flavor1:StartPulseWidth",
    "ICS_Tim:Gate_BeamRef:GateWidth",
    "ICS_Tim:Gate_BeamOn:RR",
)
